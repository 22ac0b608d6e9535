/**
 * The socket contract, in one place: every client event with the schema its payload must pass (the
 * request type is derived from it) and the `data` its ack carries, every message the server sends,
 * and the `connect_error` of a refused handshake. The server's handler registry is typed from it
 * (`ClientEventHandlers`: a missing handler or a wrong reply does not compile), and the SDK and
 * socket.io-client users take their event maps from it, through shared/protocol.ts.
 * test/types/contract.test-d.ts holds all of that in place.
 *
 * A new client event: its schema in schemas.ts, a line in CLIENT_REQUESTS and one in ClientReplies;
 * the compiler then points at the handler the server lacks (server/realtime/handlers.ts).
 *
 * Code that runs in clients (the SDK, web/) imports this module as types only: its values bring zod.
 * The SDK package's declarations get the derived types written out (scripts/pack-sdk.ts), so an
 * application needs no zod either.
 */
import type { z } from 'zod';
import type { ErrorBody, ErrorCode } from './errors.js';
import type { FluxoEvent, PresenceDiff, PresenceMember, Process, Role, RoomPosition } from './model.js';
import { presenceUpdateSchema, refreshSchema, subscribeSchema, transitionSchema, unsubscribeSchema } from './schemas.js';

/** Every client event, with the schema its one payload must pass; the server validates with these. */
export const CLIENT_REQUESTS = {
  subscribe: subscribeSchema,
  unsubscribe: unsubscribeSchema,
  'process:transition': transitionSchema,
  'presence:update': presenceUpdateSchema,
  'auth:refresh': refreshSchema,
} as const satisfies { [E in keyof ClientReplies]: z.ZodType };

/** What each client event's ack carries as `data` (a refusal carries `error` instead: see Ack). */
export interface ClientReplies {
  subscribe: SubscribeResult;
  unsubscribe: { room: string };
  'process:transition': TransitionResult;
  'presence:update': { room: string };
  'auth:refresh': { exp: number };
}

export type ClientEventName = keyof ClientReplies;
export const CLIENT_EVENTS = Object.keys(CLIENT_REQUESTS) as readonly ClientEventName[];

/**
 * What each client event sends: its schema's output (`z.infer`). Not the input: the input of a
 * JSON field (`data`, `state`) is `unknown`, since the schema screens the raw value before it
 * parses a record. No socket schema has a default or a transform, so what passes the schema is
 * exactly this type.
 */
export type ClientRequests = { [E in ClientEventName]: z.output<(typeof CLIENT_REQUESTS)[E]> };

export type RequestOf<E extends ClientEventName> = ClientRequests[E];
export type ReplyOf<E extends ClientEventName> = ClientReplies[E];

export type SubscribeRequest = RequestOf<'subscribe'>;
export type UnsubscribeRequest = RequestOf<'unsubscribe'>;
export type TransitionRequest = RequestOf<'process:transition'>;
export type PresenceUpdateRequest = RequestOf<'presence:update'>;
export type RefreshRequest = RequestOf<'auth:refresh'>;

/** Every client event's ack: `{ data }`, or `{ error }` with a code from the catalog (shared/errors.ts). */
export type Ack<T> = { data: T } | { error: ErrorBody };
export type AckFn<T> = (response: Ack<T>) => void;

export interface SubscribeResult {
  room: string;
  /**
   * The room's members, the caller included; empty when the room has more connections than the
   * server's PRESENCE_MAX_CONNECTIONS (`presenceTruncated`): the list is left out, not empty.
   */
  presence: PresenceMember[];
  /** Distinct users in the room, the caller included, whether or not the list was left out. */
  presenceCount: number;
  /**
   * True when the room has more than PRESENCE_MAX_CONNECTIONS connections (a user with two tabs counts
   * twice): `presence` is empty and
   * the room gets no presence diffs while it stays over (see PresenceDiff).
   */
  presenceTruncated: boolean;
  /** Replayed events of the room (empty without `after`), in id and offset order, read after `position`. */
  events: FluxoEvent[];
  /**
   * True when more were missed than one ack carries (1,000 events, or half of the node's
   * WS_MAX_BACKPRESSURE_BYTES of JSON): subscribe again with `after` = the last replayed id.
   */
  truncated: boolean;
  /**
   * The room's head, read after joining the room and before the replay: every later event of the
   * room reaches this socket live. Without `after`, start from here.
   */
  position: RoomPosition;
}

export interface TransitionResult {
  process: Process;
  event: FluxoEvent;
  /** True when `requestId` had been seen: this is the first result, nothing was written. */
  replayed: boolean;
}

/** Client → server: one payload and an ack per event (a packet without an ack gets no answer). */
export type ClientToServerEvents = { [E in ClientEventName]: (req: RequestOf<E>, ack: AckFn<ReplyOf<E>>) => void };

/**
 * What the server implements: one handler per client event, given the socket and the validated
 * request, resolving with its ack's `data` (a thrown error becomes the ack's `error`).
 */
export type ClientEventHandlers<Socket> = { [E in ClientEventName]: (socket: Socket, request: RequestOf<E>) => Promise<ReplyOf<E>> };

/** What the server says once a socket is connected. */
export interface Hello {
  nodeId: string;
  userId: string;
  tenant: string;
  role: Role;
  /** The token's expiry, seconds since epoch. */
  exp: number;
  /** The server's clock (ms since epoch) when it said hello: lets a client with a wrong clock time its token refresh. */
  now?: number;
  /** The `auth:refresh` budget of a user (RATE_LIMITS): a client refreshes no more often than it allows. */
  refreshLimit?: { points: number; durationS: number };
  /** The server's PROTOCOL_VERSION (`MAJOR.MINOR`); absent from servers older than versioning (they speak 1.0). */
  protocol?: string;
}

/**
 * Why the server is about to disconnect a socket; the disconnect follows at once. `code` is from
 * the error catalog: `token_revoked` (the token was logged out: do not reconnect with it),
 * `token_expired` (get a fresh token, then reconnect), `not_ready` (the node is draining: reconnect,
 * the load balancer picks another node), `rate_limited` (over a limit: reconnect after
 * `retryAfterMs`). Retry or not as the catalog's `retryable` says.
 */
export interface ServerDisconnect {
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
}

/**
 * The server took this socket out of a room it had subscribed to (the operator API); the socket
 * left the room before this was sent, so no event of the room follows it. `code` is from the
 * catalog (`unsubscribed_by_operator`). Do not subscribe again by yourself — resubscribing after a
 * reconnect or a `resync` included; the application may, since this is not a ban.
 */
export interface ServerUnsubscribe {
  room: string;
  code: ErrorCode;
  message: string;
}

export interface ServerToClientEvents {
  event: (event: FluxoEvent) => void;
  presence: (diff: PresenceDiff) => void;
  /** The token expires now; the socket is disconnected right after. */
  'auth:expired': (info: { exp: number }) => void;
  /**
   * The token expires in `inMs`: send `auth:refresh`. Sent a minute before `exp`, or at once when a
   * connect or a refresh brings a token with less than a minute left.
   */
  'auth:expiring': (info: { exp: number; inMs: number }) => void;
  /** The node is draining: reconnect (the load balancer sends you elsewhere). */
  'server:reconnect': (info: { reason: 'shutdown'; nodeId: string }) => void;
  /** Sent just before the server disconnects this socket, saying why (see ServerDisconnect). */
  'server:disconnect': (info: ServerDisconnect) => void;
  /** Sent when the server took this socket out of a room (see ServerUnsubscribe). */
  'server:unsubscribe': (info: ServerUnsubscribe) => void;
  /** Live delivery had a gap for these rooms: replay each from its position (its last offset). */
  resync: (info: { rooms: string[] }) => void;
  /** Sent once after connect. */
  hello: (info: Hello) => void;
}

/**
 * The `data` of the `connect_error` a refused handshake gets (the Error's message is `message`):
 * `unauthorized`, `token_*`, `origin_not_allowed`, `rate_limited` (with `retryAfterMs`), … A
 * `connect_error` without it did not come from Fluxo (the network, a proxy).
 */
export interface ConnectErrorData {
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
}
export type ConnectError = Error & { data?: ConnectErrorData };
