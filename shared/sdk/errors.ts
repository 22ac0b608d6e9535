import { ERRORS, type ErrorBody, type ErrorCode, isErrorCode } from '../errors.js';

/**
 * Codes the SDK raises itself, for failures that never reached the server:
 * - `timeout`: no answer within `ackTimeoutMs` (an HTTP helper's: within `timeoutMs`);
 * - `disconnected`: the connection dropped before the answer came;
 * - `offline`: not connected, and not within `offlineTimeoutMs` (retryable), or the client has
 *   given up for good (not retryable; `cause` is the reason, e.g. `token_revoked`); for an HTTP
 *   helper, the request did not reach the server (retryable);
 * - `closed`: `close()` was called.
 */
export type ClientErrorCode = 'timeout' | 'disconnected' | 'offline' | 'closed';

/**
 * A failed request. `code` is one of the server's catalog codes (shared/errors.ts) or a
 * client-side one; switch on it, never on `message`.
 * @example
 * try { await client.transition(id, 'done', { expectedVersion: 3 }); }
 * catch (err) { if (err instanceof FluxoError && err.code === 'version_conflict') showConflict(err.body?.current); }
 */
export class FluxoError extends Error {
  override name = 'FluxoError';
  readonly code: ErrorCode | ClientErrorCode;
  /** The server's error body, when the server answered. */
  readonly body: ErrorBody | undefined;

  /** Why the client is offline for good (on `offline`, when it has given up). */
  override readonly cause: FluxoError | undefined;

  /** The HTTP status, when an HTTP helper's request was answered. */
  readonly status: number | undefined;

  constructor(code: ErrorCode | ClientErrorCode, message: string, body?: ErrorBody, cause?: FluxoError, status?: number) {
    super(message);
    this.code = code;
    this.body = body;
    this.cause = cause;
    this.status = status;
  }

  /**
   * Whether the same request may succeed later: the catalog's `retryable` for server codes;
   * `timeout` and `disconnected` are, `closed` is not, `offline` is unless the client gave up for good.
   */
  get retryable(): boolean {
    if (isErrorCode(this.code)) return ERRORS[this.code].retryable;
    if (this.code === 'offline') return this.cause === undefined;
    return this.code !== 'closed';
  }

  /** Present on `rate_limited`. */
  get retryAfterMs(): number | undefined {
    return this.body?.retryAfterMs;
  }

  /** The error of a failed ack or HTTP answer; a code this SDK does not know (a newer server's) reads as `internal`. */
  static fromBody(body: ErrorBody, status?: number): FluxoError {
    const code = isErrorCode(body.code) ? body.code : 'internal';
    return new FluxoError(code, body.message, body, undefined, status);
  }
}
