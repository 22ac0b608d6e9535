import { ERRORS, type ErrorBody, type ErrorCode } from '../shared/errors.js';

/** An error whose code is in the catalog; safe to send to clients as is. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly extra: Omit<ErrorBody, 'code' | 'message'>;
  constructor(code: ErrorCode, message?: string, extra: Omit<ErrorBody, 'code' | 'message'> = {}) {
    super(message ?? ERRORS[code].message);
    this.name = 'AppError';
    this.code = code;
    this.extra = extra;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
  toBody(): ErrorBody {
    return { code: this.code, message: this.message, ...this.extra };
  }
}

/** Maps anything thrown to a client-safe body: unknown errors become `internal` without details. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof AppError) return err.toBody();
  return { code: 'internal', message: ERRORS.internal.message };
}
