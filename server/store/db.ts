import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { Schema } from './schema.js';

/** Both drizzle-orm/pglite and drizzle-orm/postgres-js databases (and their transactions) are this. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

/** Statements to run on a database that the caller chooses (primary, replica or a transaction). */
export type Query<T> = (db: Db) => Promise<T>;

/** pino-compatible subset. */
export interface StoreLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: StoreLogger = { debug() {}, info() {}, warn() {}, error() {} };
