/** The Fluxo client SDK: import from Node or a browser bundle. */

export type { ErrorBody, ErrorCode } from '../errors.js';
// The catalog, so an application can read a code's `retryable` and `status` as the SDK does.
export { ERROR_CODES, ERRORS, isErrorCode } from '../errors.js';
export type {
  CreateProcessRequest,
  CreateWorkflowRequest,
  EventPage,
  EventsRequest,
  FluxoEvent,
  FluxoEventType,
  Hello,
  ListProcessesRequest,
  Me,
  PresenceDiff,
  PresenceMember,
  PresenceState,
  Process,
  ProcessPage,
  Role,
  RoomPosition,
  SubscribeResult,
  TransitionBody,
  TransitionResult,
  Workflow,
} from '../protocol.js';
export { PROTOCOL_VERSION } from '../protocol.js';
export type { BackoffOptions } from './backoff.js';
export { backoffDelay } from './backoff.js';
export type {
  ClientEvents,
  ConnectionState,
  ConnectionStatus,
  ConnectOptions,
  EventHandler,
  FluxoSocket,
  PresenceChange,
  Session,
  Unsubscribe,
} from './client.js';
export { connect, FluxoClient } from './client.js';
export type { ClientErrorCode } from './errors.js';
export { FluxoError } from './errors.js';
export type { HttpOptions, TransitionOptions } from './http.js';
export { FluxoHttp } from './http.js';
export { protocolMismatch } from './protocol-version.js';
export type { RoomGap } from './room-stream.js';
export { RoomStream } from './room-stream.js';
