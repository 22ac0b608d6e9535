import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import type { MigrationClient } from './migrator.js';
import { schema } from './schema.js';
import { type Backend, type Db, SqlStore, type StoreLogger } from './sql-store.js';
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
  /** See SqlStoreOptions.readYourWritesMs. @default 0 */
  readYourWritesMs?: number;
  logger?: StoreLogger;
  /** Directory of the SQL migrations. @default <repo>/migrations */
  migrationsDir?: string;
  /** See SqlStoreOptions.replicaMaxLagMs. */
  replicaMaxLagMs?: number;
  /** See SqlStoreOptions.lagProbeMs. @default 1000 */
  lagProbeMs?: number;
  /** Seconds postgres.js waits for a connection: small, so a down primary fails fast. @default 5 */
  connectTimeoutS?: number;
}

/** Builds the store for the configured backend. Does not migrate: call `store.migrate()` (or `npm run migrate`). */
export async function createStore(opts: CreateStoreOptions = {}): Promise<SqlStore & Store> {
  const backend = opts.databaseUrl ? postgresBackend(opts.databaseUrl, opts) : await pgliteBackend(opts.pgliteDir);
  return new SqlStore(backend, {
    readYourWritesMs: opts.readYourWritesMs,
    logger: opts.logger,
    migrationsDir: opts.migrationsDir,
    replicaMaxLagMs: opts.replicaMaxLagMs,
    lagProbeMs: opts.lagProbeMs,
    // PGlite runs one query at a time; a Postgres pool can build the next batch while one commits.
    commitConcurrency: backend.kind === 'postgres' ? 2 : 1,
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

function postgresBackend(url: string, opts: CreateStoreOptions): Backend {
  const connect = (u: string) =>
    postgres(u, {
      max: opts.poolSize ?? 10,
      connect_timeout: opts.connectTimeoutS ?? 5,
      idle_timeout: 60,
      onnotice: () => {},
      connection: { application_name: 'fluxo' },
    });
  const primary = connect(url);
  const replicas = (opts.replicaUrls ?? []).map(connect);
  const migrations: MigrationClient = {
    transaction: async (fn) =>
      (await primary.begin((tx) =>
        fn({
          exec: async (script) => {
            await tx.unsafe(script);
          },
          query: async (text, params) => [...(await tx.unsafe(text, params as postgres.ParameterOrJSON<never>[]))],
        }),
      )) as Awaited<ReturnType<typeof fn>>,
  };
  return {
    kind: 'postgres',
    primary: drizzlePostgres({ client: primary, schema }) as unknown as Db,
    // Replicas are routed by SqlStore.read (health, fallback, read-your-writes) rather than drizzle's
    // withReplicas, which picks at random and cannot tell which replica failed.
    replicas: replicas.map((client) => drizzlePostgres({ client, schema }) as unknown as Db),
    migrations,
    close: async () => {
      await Promise.all([primary, ...replicas].map((c) => c.end({ timeout: 5 })));
    },
  };
}
