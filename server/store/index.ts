import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { Db, StoreLogger } from './db.js';
import type { MigrationClient } from './migrator.js';
import { schema } from './schema.js';
import { type Backend, SqlStore } from './sql-store.js';
import type { Store } from './store.js';

export { SqlStore } from './sql-store.js';
export type { Store } from './store.js';

export interface CreateStoreOptions {
  /** Postgres primary. Unset: embedded PGlite. */
  databaseUrl?: string;
  /** Streaming replicas for reads that may lag (Postgres only). @default [] */
  replicaUrls?: string[];
  /** PGlite data directory; unset keeps the database in memory. */
  pgliteDir?: string;
  /** Connections per Postgres pool (primary and each replica). @default 10 */
  poolSize?: number;
  logger?: StoreLogger;
  /** Directory of the SQL migrations. @default <repo>/migrations */
  migrationsDir?: string;
  /** See SqlStoreOptions.replicaMaxLagMs. */
  replicaMaxLagMs?: number;
  /** See SqlStoreOptions.lagProbeMs. @default 1000 */
  lagProbeMs?: number;
  /**
   * Seconds postgres.js waits for a connection: small, so a down primary fails fast.
   * @default writeTimeoutMs / 1000, at least 1
   */
  connectTimeoutS?: number;
  /** See SqlStoreOptions.writeTimeoutMs (Postgres only). @default 2000 */
  writeTimeoutMs?: number;
  /** See SqlStoreOptions.replicaTimeoutMs. @default 500 */
  replicaTimeoutMs?: number;
  /** Session settings of every Postgres connection; 0 turns one off. */
  session?: SessionTimeouts;
  /** See SqlStoreOptions.maxProcessDataBytes. */
  maxProcessDataBytes?: number;
}

/** Server-side limits of each Postgres session (startup parameters; 0 = off). */
export interface SessionTimeouts {
  /** `statement_timeout`: a statement running longer is cancelled. @default 5000 */
  statementTimeoutMs?: number;
  /** `lock_timeout`: a statement waiting longer for a lock (a row another transaction holds) fails. @default 1000 */
  lockTimeoutMs?: number;
  /**
   * `idle_in_transaction_session_timeout`: a session idle this long inside a transaction — its
   * node frozen or cut off mid-transaction — is ended by the server, releasing its locks. Also the
   * limit after which nodes end a session stuck mid-statement (stuck-sessions.ts). @default 3000
   */
  idleInTransactionTimeoutMs?: number;
}

/** The defaults of createStore, the same as those of the environment (server/config/schema.ts). */
export const STORE_DEFAULTS = {
  writeTimeoutMs: 2000,
  replicaTimeoutMs: 500,
  statementTimeoutMs: 5000,
  lockTimeoutMs: 1000,
  idleInTransactionTimeoutMs: 3000,
} as const;

/** Builds the store for the configured backend. Does not migrate: call `store.migrate()` (or `npm run migrate`). */
export async function createStore(opts: CreateStoreOptions = {}): Promise<SqlStore & Store> {
  const backend = opts.databaseUrl ? postgresBackend(opts.databaseUrl, opts) : await pgliteBackend(opts.pgliteDir);
  return new SqlStore(backend, {
    logger: opts.logger,
    migrationsDir: opts.migrationsDir,
    replicaMaxLagMs: opts.replicaMaxLagMs,
    lagProbeMs: opts.lagProbeMs,
    // Deadlines for Postgres only: an embedded PGlite cannot become unreachable.
    writeTimeoutMs: backend.kind === 'postgres' ? (opts.writeTimeoutMs ?? STORE_DEFAULTS.writeTimeoutMs) : undefined,
    replicaTimeoutMs: opts.replicaTimeoutMs ?? STORE_DEFAULTS.replicaTimeoutMs,
    // The idle timeout's counterpart for sessions frozen mid-statement (see stuck-sessions.ts).
    stuckSessionMs: opts.session?.idleInTransactionTimeoutMs ?? STORE_DEFAULTS.idleInTransactionTimeoutMs,
    // PGlite runs one query at a time; a Postgres pool can build the next batch while one commits.
    commitConcurrency: backend.kind === 'postgres' ? 2 : 1,
    maxProcessDataBytes: opts.maxProcessDataBytes,
  });
}

async function pgliteBackend(dir: string | undefined): Promise<Backend> {
  const client = new PGlite(dir);
  await client.waitReady;
  const migrations: MigrationClient = {
    transaction: (fn) =>
      client.transaction((tx) =>
        fn({
          exec: async (script) => {
            await tx.exec(script);
          },
          query: async (text, params) => (await tx.query<Record<string, unknown>>(text, params)).rows,
        }),
      ),
  };
  return {
    kind: 'pglite',
    primary: drizzlePglite({ client, schema }) as unknown as Db,
    replicas: [],
    migrations,
    close: () => client.close(),
  };
}

/**
 * The postgres.js options of every Fluxo pool (exported for tests that need a session configured
 * exactly like a node's).
 */
export function postgresOptions(opts: CreateStoreOptions = {}): postgres.Options<Record<string, never>> {
  const session = opts.session ?? {};
  const writeTimeoutMs = opts.writeTimeoutMs ?? STORE_DEFAULTS.writeTimeoutMs;
  return {
    max: opts.poolSize ?? 10,
    connect_timeout: opts.connectTimeoutS ?? Math.max(1, writeTimeoutMs / 1000),
    // postgres.js waits (0.5–1) × min(3^n / 100, 20) s before reconnecting after the n-th failed
    // attempt in a row, and queries wait for that: up to 20 s after a primary came back. Capped at
    // 1 s, a restarted primary is used again within a second.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 1),
    idle_timeout: 60,
    onnotice: () => {},
    // Startup parameters: set for the whole session by the server, on every connection.
    connection: {
      application_name: 'fluxo',
      statement_timeout: session.statementTimeoutMs ?? STORE_DEFAULTS.statementTimeoutMs,
      lock_timeout: session.lockTimeoutMs ?? STORE_DEFAULTS.lockTimeoutMs,
      idle_in_transaction_session_timeout: session.idleInTransactionTimeoutMs ?? STORE_DEFAULTS.idleInTransactionTimeoutMs,
    },
  };
}

function postgresBackend(url: string, opts: CreateStoreOptions): Backend {
  const connect = (u: string) => postgres(u, postgresOptions(opts));
  const primary = connect(url);
  const replicas = (opts.replicaUrls ?? []).map(connect);
  const migrations: MigrationClient = {
    transaction: async (fn) =>
      (await primary.begin(async (tx) => {
        // A migration may rewrite a large table or wait for other nodes' migrations (advisory lock):
        // the session limits, meant for requests, do not apply.
        await tx.unsafe('SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0');
        return fn({
          exec: async (script) => {
            await tx.unsafe(script);
          },
          query: async (text, params) => [...(await tx.unsafe(text, params as postgres.ParameterOrJSON<never>[]))],
        });
      })) as Awaited<ReturnType<typeof fn>>,
  };
  return {
    kind: 'postgres',
    primary: drizzlePostgres({ client: primary, schema }) as unknown as Db,
    // Replicas are routed by ReadRouter (health, lag, fallback, `fresh`) rather than drizzle's
    // withReplicas, which picks at random and cannot tell which replica failed.
    replicas: replicas.map((client) => drizzlePostgres({ client, schema }) as unknown as Db),
    migrations,
    close: async () => {
      await Promise.all([primary, ...replicas].map((c) => c.end({ timeout: 5 })));
    },
  };
}
