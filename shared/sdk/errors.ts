import { ERRORS, type ErrorBody, type ErrorCode, isErrorCode } from '../errors.js';

/** Codes the SDK raises itself, for failures that never reached the server. */
export type ClientErrorCode = 'timeout' | 'disconnected' | 'closed';

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

  constructor(code: ErrorCode | ClientErrorCode, message: string, body?: ErrorBody) {
    super(message);
    this.code = code;
    this.body = body;
  }

  /** Whether the same request may succeed later (the catalog's `retryable`; client-side failures are). */
  get retryable(): boolean {
    return isErrorCode(this.code) ? ERRORS[this.code].retryable : this.code !== 'closed';
  }

  /** Present on `rate_limited`. */
  get retryAfterMs(): number | undefined {
    return this.body?.retryAfterMs;
  }

  static fromBody(body: ErrorBody): FluxoError {
    const code = isErrorCode(body.code) ? body.code : 'internal';
    return new FluxoError(code, body.message, body);
  }
}
