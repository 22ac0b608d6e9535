import type { ErrorBody, ErrorCode } from './errors.js';

/**
 * The version of this contract — the socket events, payloads and acks below and the HTTP API's
 * shapes — sent as `hello.protocol`. `MAJOR.MINOR`: the minor grows with additions a client written
 * for an older minor can ignore (an optional field, an event, a route); the major grows when such a
 * client would misread the server (a field removed, renamed or given another meaning). A client
 * works with any minor of its own major and must stop on another major (the SDK gives up with
 * `protocol_mismatch`). A server whose `hello` has no `protocol` predates versioning and speaks 1.0.
 */
export const PROTOCOL_VERSION = '1.0';

export type Role = 'viewer' | 'editor' | 'admin';
export const ROLES: readonly Role[] = ['viewer', 'editor', 'admin'];

export interface Workflow {
  id: string;
  name: string;
  /** Ordered stage names. */
  stages: string[];
  /** Allowed moves: `from` stage → list of `to` stages. */
  transitions: Record<string, string[]>;
  createdAt: string;
}

export interface Process {
  id: string;
  workflowId: string;
  title: string;
  stage: string;
  assignee: string | null;
  data: Record<string, unknown>;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export type FluxoEventType = 'process.created' | 'process.transitioned' | 'custom';

/**
 * ## Room streams: how a client gets every event of a room exactly once and in order
 *
 * Each room is a stream. Every event carries, for each room it belongs to, its **offset** in that
 * room: `offsets[i]` is its position in `rooms[i]` — 1 for the room's first event, then +1 for
 * each next one, with no hole, assigned in the committing transaction and stored in the event log.
 * Event `id`s are per tenant: a room sees only some of them, so ids tell order, never gaps;
 * offsets tell both.
 *
 * Live events may arrive out of order (commits on several nodes are published independently) and
 * may be missing (a Redis outage, a node that died between commit and publish). The rules, which
 * the SDK (shared/sdk) follows and a plain socket.io-client user should too, per room:
 * 1. Keep the room's position: the `offset` and `id` of the last event applied, and the `epoch`.
 * 2. An event whose offset is ≤ the position: a repeat (a socket in two of its rooms gets it once
 *    per room; replay and live overlap) — drop it.
 * 3. Offset = position + 1: apply it, then any held events that follow on.
 * 4. Offset > position + 1: a gap. Hold the event; if the gap is still open after a short wait
 *    (the SDK waits 500 ms), subscribe again with `after` = the position's `id`: the ack replays
 *    every stored event of the room after it, in order.
 * 5. On every (re)subscribe ack: if `position.epoch` differs from yours, your position means
 *    nothing in this log (it was recreated or restored): reload the room's state from the HTTP API
 *    and go on from `position`. If the replay's first event is not at your offset + 1, or the
 *    replay is empty while `position.offset` is beyond yours, the events in between were removed
 *    by retention (EVENT_RETENTION_MONTHS): reload likewise. Otherwise nothing was lost.
 * 6. Resubscribe after every reconnect and on `resync`, from the position of rule 1 — never from
 *    a position moved forward past a gap.
 */

/** Where a room's stream stands. */
export interface RoomPosition {
  /** Offset of the last event (0: none yet). */
  offset: number;
  /** Id of the event at `offset` (0: none yet): pass it as `after` to resume after it. */
  id: number;
  /** The event log's epoch: positions of another epoch cannot be resumed. */
  epoch: string;
}

/** One committed state change, as delivered to subscribers and replayed from the log. */
export interface FluxoEvent {
  /** Monotonic per tenant; events of a tenant become visible in id order. */
  id: number;
  type: FluxoEventType | string;
  /** Tenant-relative rooms the event was sent to. */
  rooms: string[];
  /** `offsets[i]` is this event's offset in `rooms[i]` (see "Room streams" above). */
  offsets: number[];
  processId: string | null;
  workflowId: string | null;
  fromStage: string | null;
  toStage: string | null;
  version: number | null;
  actor: string;
  /** ISO time of commit. */
  at: string;
  data: Record<string, unknown>;
}

export interface PresenceMember {
  userId: string;
  name: string | null;
  /** Live connections (tabs, devices) of this user in the room, across nodes. */
  connections: number;
  state: PresenceState | null;
}
export type PresenceState = { status?: 'viewing' | 'editing' | 'idle'; [key: string]: unknown };

export interface PresenceDiff {
  room: string;
  joins: PresenceMember[];
  leaves: string[];
  updates: PresenceMember[];
}

export type Ack<T> = { data: T } | { error: ErrorBody };
export type AckFn<T> = (response: Ack<T>) => void;

export interface SubscribeRequest {
  room: string;
  /** Replay the room's stored events with an id greater than this (the `id` of your position). */
  after?: number;
}
export interface SubscribeResult {
  room: string;
  presence: PresenceMember[];
  /** Replayed events of the room (empty without `after`), in id and offset order, read after `position`. */
  events: FluxoEvent[];
  /** True when more than the replay limit were missed: subscribe again with `after` = the last replayed id. */
  truncated: boolean;
  /**
   * The room's head, read after joining the room and before the replay: every later event of the
   * room reaches this socket live. Without `after`, start from here.
   */
  position: RoomPosition;
}
export interface TransitionRequest {
  processId: string;
  to: string;
  expectedVersion?: number;
  requestId?: string;
  data?: Record<string, unknown>;
}
export interface TransitionResult {
  process: Process;
  event: FluxoEvent;
  /** True when `requestId` had been seen: this is the first result, nothing was written. */
  replayed: boolean;
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
 * catalog (`unsubscribed_by_operator`). Subscribing again is allowed: this is not a ban.
 */
export interface ServerUnsubscribe {
  room: string;
  code: ErrorCode;
  message: string;
}

export interface ClientToServerEvents {
  subscribe: (req: SubscribeRequest, ack: AckFn<SubscribeResult>) => void;
  unsubscribe: (req: { room: string }, ack: AckFn<{ room: string }>) => void;
  'process:transition': (req: TransitionRequest, ack: AckFn<TransitionResult>) => void;
  'presence:update': (req: { room: string; state: PresenceState }, ack: AckFn<{ room: string }>) => void;
  'auth:refresh': (req: { token: string }, ack: AckFn<{ exp: number }>) => void;
}

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

export interface ServerToClientEvents {
  event: (event: FluxoEvent) => void;
  presence: (diff: PresenceDiff) => void;
  /** The token expires now; the socket is disconnected right after. */
  'auth:expired': (info: { exp: number }) => void;
  /** The token will expire soon: send `auth:refresh`. */
  'auth:expiring': (info: { exp: number; inMs: number }) => void;
  /** The node is draining: reconnect (the load balancer sends you elsewhere). */
  'server:reconnect': (info: { reason: 'shutdown'; nodeId: string }) => void;
  /** Sent just before the server disconnects this socket, saying why (see ServerDisconnect). */
  'server:disconnect': (info: ServerDisconnect) => void;
  /** Sent when the server took this socket out of a room (see ServerUnsubscribe). */
  'server:unsubscribe': (info: ServerUnsubscribe) => void;
  /** Live delivery had a gap for these rooms: replay from your last event id. */
  resync: (info: { rooms: string[] }) => void;
  /** Sent once after connect. */
  hello: (info: Hello) => void;
}

export const CLIENT_EVENTS = ['subscribe', 'unsubscribe', 'process:transition', 'presence:update', 'auth:refresh'] as const;
export type ClientEventName = (typeof CLIENT_EVENTS)[number];

/*
 * The HTTP API's requests and answers, as the SDK's HTTP helpers take and return them (an answer's
 * body is `{ data }`, or `{ error }` with a catalog code). The zod schemas in shared/schemas.ts check
 * the requests and are what /openapi.json is generated from; test/integration/openapi.test.ts checks
 * that these types and those schemas agree.
 */

/** POST /api/workflows (admin). */
export interface CreateWorkflowRequest {
  name: string;
  stages: string[];
  transitions: Record<string, string[]>;
}

/** POST /api/processes (editor). */
export interface CreateProcessRequest {
  workflowId: string;
  title: string;
  /** @default the workflow's first stage */
  stage?: string;
  assignee?: string | null;
  data?: Record<string, unknown>;
}

/** GET /api/processes query. */
export interface ListProcessesRequest {
  workflowId?: string;
  stage?: string;
  assignee?: string;
  /** 1–500. @default 50 */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** Also count the matching processes (`total`); counting reads every matching row, so ask once, not per page. */
  total?: boolean;
}

/** A page of GET /api/processes (its body: `{ data: items, nextCursor, total? }`). */
export interface ProcessPage {
  items: Process[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
  /** How many processes match the filters, when `total` was asked for. */
  total?: number;
}

/** POST /api/processes/:id/transition body: a TransitionRequest whose process id is in the path. */
export type TransitionBody = Omit<TransitionRequest, 'processId'>;

/** GET /api/events query: the stored events of a room (replay, history). */
export interface EventsRequest {
  room: string;
  /** Events with an id greater than this. @default 0 */
  after?: number;
  /** With it, the newest `limit` events with `after` < id < `before`, still in id order. */
  before?: number;
  /** 1–1000. @default 100 */
  limit?: number;
}

/** A page of GET /api/events (its body: `{ data: events, next }`). */
export interface EventPage {
  events: FluxoEvent[];
  /** Pass as `after` for the next page; null when this page was not full. */
  next: number | null;
}

/** GET /api/me: who the credentials say you are. */
export interface Me {
  userId: string;
  tenant: string;
  role: Role;
  name: string | null;
  /** Token expiry, seconds since epoch. */
  exp: number;
}
