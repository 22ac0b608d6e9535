import { AppError } from '../errors.js';

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

/** SQLSTATEs that mean the server is going away or not accepting connections. */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
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

/** SQLSTATE of the first Postgres error in the chain, if any. */
export function sqlState(err: unknown): string | undefined {
  for (const e of causes(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SQLSTATE.test(code)) return code;
  }
  return undefined;
}

/** AppErrors pass through, connection failures become `store_unavailable`, anything else is rethrown as is. */
export function toStoreError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  if (isConnectionError(err)) {
    const unavailable = new AppError('store_unavailable');
    // Kept for logs; toBody() never sends it to clients.
    Object.defineProperty(unavailable, 'cause', { value: err, enumerable: false });
    return unavailable;
  }
  return err;
}
