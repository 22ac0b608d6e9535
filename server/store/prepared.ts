import type { Db } from './db.js';
import { rowsOf } from './rows.js';

/**
 * Runs `text`, a constant statement with `$1…` placeholders, with `params` as a prepared statement:
 * postgres.js parses, describes and plans it once per connection and afterwards sends only the
 * parameters (one round trip). drizzle's `execute(sql`…`)` sends every statement unprepared, and
 * postgres.js then needs two round trips for any statement with parameters (describe first, then
 * bind and execute) — on the write path that was most of the node's and Postgres's cost per batch
 * (issue 13). Only for statements whose text never varies (the batch is one jsonb parameter): a
 * text that varied would prepare a new statement every time. PGlite runs it like `execute`.
 */
export async function runPrepared(db: Db, text: string, params: unknown[]): Promise<Record<string, unknown>[]> {
  // A name makes drizzle ask postgres.js to prepare; postgres.js names the statement itself.
  return rowsOf(await db._.session.prepareQuery({ sql: text, params }, undefined, 'fluxo', false).execute());
}
