import type postgres from 'postgres';
import type { Db } from './db.js';
import { rowsOf } from './rows.js';

type Rows = Record<string, unknown>[];
type PostgresJs = Pick<postgres.Sql, 'unsafe'>;

/** The postgres.js client under a drizzle database or transaction; null on PGlite. */
function postgresJsOf(db: Db): PostgresJs | null {
  const client = (db._.session as unknown as { client?: { unsafe?: unknown } }).client;
  return client && typeof client.unsafe === 'function' ? (client as PostgresJs) : null;
}

/**
 * Runs `text`, a constant statement with `$1…` placeholders, with `params` as a prepared statement:
 * postgres.js parses, describes and plans it once per connection and afterwards sends only the
 * parameters (one round trip). drizzle's `execute(sql`…`)` sends every statement unprepared, and
 * postgres.js then needs two round trips for any statement with parameters (describe first, then
 * bind and execute) — on the write path that was most of the node's and Postgres's cost per batch
 * (issue 13). Only for statements whose text never varies (the batch is one jsonb parameter): a
 * text that varied would prepare a new statement every time.
 *
 * On postgres.js the statement goes to the client directly (not through drizzle's async layers),
 * so it is handed to the connection on the next microtask: statements sent one after another in
 * the same tick go out in that order, in one write, before anything sent later — a COMMIT the
 * transaction sends once its body returned included (see `sendsInOrder`). PGlite runs it like
 * `execute`.
 */
export function runPrepared(db: Db, text: string, params: unknown[]): Promise<Rows> {
  const pg = postgresJsOf(db);
  // `then` hands the query to the connection now (postgres.js queries are lazy until then).
  if (pg) return pg.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true }).then((rows) => rows as unknown as Rows);
  // A name makes drizzle ask its driver to prepare.
  return db._.session
    .prepareQuery({ sql: text, params }, undefined, 'fluxo', false)
    .execute()
    .then((r) => rowsOf(r));
}

/**
 * True when statements `runPrepared` sends on `db` reach the server in the order they were sent,
 * ahead of whatever the transaction sends after its body returned: then a transaction body may
 * send its last statements and return without waiting for their answers, and the COMMIT goes out
 * right behind them (one round trip less). If one of them fails, the server turns that COMMIT into
 * a rollback, and its own promise says so.
 */
export function sendsInOrder(db: Db): boolean {
  return postgresJsOf(db) !== null;
}
