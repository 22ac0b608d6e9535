/** The Fluxo client SDK: import from Node or a browser bundle. */
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
  TransitionOptions,
  Unsubscribe,
} from './client.js';
export { connect, FluxoClient } from './client.js';
export type { ClientErrorCode } from './errors.js';
export { FluxoError } from './errors.js';
export { RoomStream } from './room-stream.js';
