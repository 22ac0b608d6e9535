/**
 * The one catalog of error codes. A code is never reused for another meaning.
 * `status` is the HTTP status; `retryable` tells a client whether the same request may succeed later.
 */
export const ERRORS = {
  bad_request: { status: 400, retryable: false, message: 'The request is malformed.' },
  invalid_json: { status: 400, retryable: false, message: 'The body is not valid JSON.' },
  validation_failed: { status: 400, retryable: false, message: 'The input does not match the schema.' },
  unknown_event: { status: 400, retryable: false, message: 'This event is not part of the protocol.' },
  invalid_room: { status: 400, retryable: false, message: 'The room name is not valid.' },
  unauthorized: { status: 401, retryable: false, message: 'A valid token is required.' },
  token_invalid: { status: 401, retryable: false, message: 'The token is malformed, forged or wrongly signed.' },
  token_expired: { status: 401, retryable: false, message: 'The token has expired.' },
  token_revoked: { status: 401, retryable: false, message: 'The token has been revoked.' },
  auth_unavailable: {
    status: 503,
    retryable: true,
    message: 'The signing keys (JWKS) cannot be fetched from the identity provider; retry later.',
  },
  forbidden: { status: 403, retryable: false, message: 'Your role does not allow this.' },
  origin_not_allowed: { status: 403, retryable: false, message: 'This origin may not use the session cookie.' },
  not_found: { status: 404, retryable: false, message: 'No such resource.' },
  method_not_allowed: { status: 405, retryable: false, message: 'This method is not allowed here.' },
  version_conflict: { status: 409, retryable: false, message: 'The process has changed since that version.' },
  conflict: { status: 409, retryable: false, message: 'The resource already exists.' },
  request_in_progress: {
    status: 409,
    retryable: true,
    message: 'A request with this requestId is still in progress; retry with the same requestId.',
  },
  too_many_rooms: {
    status: 409,
    retryable: false,
    message: 'This connection is in MAX_ROOMS_PER_SOCKET rooms already: unsubscribe from one first.',
  },
  payload_too_large: { status: 413, retryable: false, message: 'The payload exceeds MAX_PAYLOAD_BYTES.' },
  payload_too_deep: { status: 400, retryable: false, message: 'The payload nests arrays and objects more than 32 deep.' },
  unsupported_media_type: { status: 415, retryable: false, message: 'Send application/json.' },
  invalid_transition: { status: 422, retryable: false, message: 'The workflow does not allow this transition.' },
  rate_limited: { status: 429, retryable: true, message: 'Too many requests; retry later.' },
  internal: { status: 500, retryable: true, message: 'Internal error.' },
  store_unavailable: { status: 503, retryable: true, message: 'The database is unavailable.' },
  not_ready: { status: 503, retryable: true, message: 'The node is not ready or is draining.' },
  // Socket notices of the operator API (/api/admin): sent in `server:disconnect` / `server:unsubscribe`, never as an HTTP answer.
  disconnected_by_operator: { status: 403, retryable: false, message: 'An operator disconnected this connection: do not reconnect.' },
  reconnect_requested: { status: 503, retryable: true, message: 'An operator asked this connection to reconnect.' },
  unsubscribed_by_operator: { status: 403, retryable: false, message: 'An operator removed this connection from the room.' },
  // Raised by the SDK, never answered by a server: the server's `hello.protocol` has another major
  // version than the client's (shared/protocol.ts PROTOCOL_VERSION). Upgrading one of them is the only fix.
  protocol_mismatch: {
    status: 400,
    retryable: false,
    message: 'The server speaks an incompatible protocol version: upgrade the client or the server.',
  },
} as const satisfies Record<string, { status: number; retryable: boolean; message: string }>;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/** The error body of every HTTP error response and every failed Socket.IO ack. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  /** Present on `rate_limited`. */
  retryAfterMs?: number;
  /** Present on `version_conflict`: the current state. */
  current?: unknown;
  /** Present on `validation_failed`: where the input went wrong. */
  issues?: { path: string; message: string }[];
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}
