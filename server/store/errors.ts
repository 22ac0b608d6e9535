import { AppError } from '../errors.js';
import { DeadlineExceeded } from './deadline.js';

/** Error codes of postgres.js and Node sockets that mean "the server could not be reached or went away". */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);

/**
 * SQLSTATEs that mean the server is going away or not accepting connections, or killed this
 * session (25P03: idle_in_transaction_session_timeout, e.g. after this node was frozen).
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '25P03']);
/**
 * The server gave up waiting for this statement: 55P03 lock_timeout (another session holds the
 * row, e.g. a frozen node's transaction until the server kills it), 57014 statement_timeout or a
 * cancel. The transaction rolled back; the same request may succeed later.
 */
const TIMEOUT_SQLSTATES = new Set(['55P03', '57014']);
/**
 * SQLSTATEs of a server that answers but cannot take writes now: 25006 read_only_sql_transaction
 * (the URL reaches a standby or a demoted primary — a failover under way — or an operator set
 * default_transaction_read_only), 53000/53100/53200 insufficient resources (disk or memory full),
 * 58030 io_error. The statement was refused and its transaction rolled back: nothing was applied,
 * and the same request may succeed once the server is fixed or the failover is over.
 */
const CANNOT_WRITE_SQLSTATES = new Set(['25006', '53000', '53100', '53200', '58030']);
const SQLSTATE = /^[0-9A-Z]{5}$/;

/** drizzle wraps driver errors (DrizzleQueryError.cause); walk the chain, a few levels at most. */
function* causes(err: unknown): Generator<unknown> {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current != null; depth++) {
    yield current;
    current = (current as { cause?: unknown }).cause;
  }
}

/** True when `err` (or its cause) says the database is unreachable rather than that the query failed. */
export function isConnectionError(err: unknown): boolean {
  for (const e of causes(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (CONNECTION_CODES.has(code)) return true;
    if (SQLSTATE.test(code) && (code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code))) return true;
  }
  return false;
}

/** True when the server answers but cannot take writes now (read-only, disk or memory full). */
export function isCannotWriteError(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && CANNOT_WRITE_SQLSTATES.has(state);
}

/**
 * True when a hot standby cancelled the statement to replay the primary's WAL ("canceling statement
 * due to conflict with recovery": 40001, or 40P01 for a buffer-pin deadlock). Only a replica read
 * meets it — Fluxo reads replicas in read committed, where neither state comes from anything else —
 * and the same read on the primary succeeds; the replica itself is fine.
 */
export function isRecoveryConflict(err: unknown): boolean {
  const state = sqlState(err);
  return state === '40001' || state === '40P01';
}

/** A unique violation on a request id's row (idempotency_keys): another write holds that id. */
export function isClaimConflict(err: unknown): boolean {
  for (const e of causes(err)) {
    // postgres.js names it constraint_name, pg-protocol (PGlite) constraint.
    const { code, constraint_name, constraint } = e as { code?: unknown; constraint_name?: unknown; constraint?: unknown };
    if (code === '23505' && (constraint_name ?? constraint) === 'idempotency_keys_pkey') return true;
  }
  return false;
}

/** SQLSTATE of the first Postgres error in the chain, if any. */
export function sqlState(err: unknown): string | undefined {
  for (const e of causes(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SQLSTATE.test(code)) return code;
  }
  return undefined;
}

/**
 * True when a table or column is missing (42P01, 42703): on a replica, that is a replica that has
 * not yet replayed a migration the primary just applied (a node starting after an upgrade).
 */
export function isMissingSchemaError(err: unknown): boolean {
  const state = sqlState(err);
  return state === '42P01' || state === '42703';
}

/** True when the database did not answer in time: our deadline, or the server's own timeouts. */
export function isTimeoutError(err: unknown): boolean {
  if (err instanceof DeadlineExceeded) return true;
  const state = sqlState(err);
  return state !== undefined && TIMEOUT_SQLSTATES.has(state);
}

/**
 * What a client is told when the database did not answer within the deadline. Still
 * `store_unavailable` (retryable): the write may or may not have been applied — a COMMIT may have
 * been in flight — and a retry with the same requestId returns the first result if it was.
 * Transitions and publishes take a requestId; a request sent without one (or a create, which has
 * none) may be applied twice if retried, which the message must not hide.
 */
const UNANSWERED =
  'The database did not answer in time; the write may still have been applied. A transition or publish retried with the same requestId gets the first result; a request without one (or a create) may be applied twice if retried.';

/**
 * AppErrors pass through; connection failures, timeouts (ours and the server's) and a server that
 * cannot take writes become `store_unavailable`; anything else is rethrown as is.
 */
export function toStoreError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  if (err instanceof DeadlineExceeded) {
    const unavailable = new AppError('store_unavailable', UNANSWERED);
    Object.defineProperty(unavailable, 'cause', { value: err, enumerable: false });
    return unavailable;
  }
  if (isConnectionError(err) || isTimeoutError(err) || isCannotWriteError(err)) {
    const unavailable = new AppError('store_unavailable');
    // Kept for logs; toBody() never sends it to clients.
    Object.defineProperty(unavailable, 'cause', { value: err, enumerable: false });
    return unavailable;
  }
  return err;
}

/** The primary answers but is read-only (Store.ping): writes would get store_unavailable. */
export class ReadOnlyPrimary extends AppError {
  constructor() {
    super('store_unavailable', 'The Postgres primary is read-only (a standby, or default_transaction_read_only is on).');
    this.name = 'ReadOnlyPrimary';
  }
}
