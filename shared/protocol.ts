import type { ErrorBody } from './errors.js';

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

/** One committed state change, as delivered to subscribers and replayed from the log. */
export interface FluxoEvent {
  /** Monotonic per tenant; events of a tenant become visible in id order. */
  id: number;
  type: FluxoEventType | string;
  /** Tenant-relative rooms the event was sent to. */
  rooms: string[];
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
  /** Replay stored events with an id greater than this before live ones. */
  after?: number;
}
export interface SubscribeResult {
  room: string;
  presence: PresenceMember[];
  /** Replayed events (empty without `after`), in id order. */
  events: FluxoEvent[];
  /** True when more than the replay limit were missed: page through GET /api/events. */
  truncated: boolean;
  /**
   * The tenant's latest committed event id, read after joining the room: every later event of
   * the room reaches this socket live. A client that has seen no event yet resubscribes with
   * `after: cursor` to catch up on what it missed while disconnected.
   */
  cursor: number;
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

export interface ClientToServerEvents {
  subscribe: (req: SubscribeRequest, ack: AckFn<SubscribeResult>) => void;
  unsubscribe: (req: { room: string }, ack: AckFn<{ room: string }>) => void;
  'process:transition': (req: TransitionRequest, ack: AckFn<TransitionResult>) => void;
  'presence:update': (req: { room: string; state: PresenceState }, ack: AckFn<{ room: string }>) => void;
  'auth:refresh': (req: { token: string }, ack: AckFn<{ exp: number }>) => void;
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
  /** Live delivery had a gap for these rooms: replay from your last event id. */
  resync: (info: { rooms: string[] }) => void;
  /** Sent once after connect. */
  hello: (info: { nodeId: string; userId: string; tenant: string; role: Role; exp: number }) => void;
}

export const CLIENT_EVENTS = ['subscribe', 'unsubscribe', 'process:transition', 'presence:update', 'auth:refresh'] as const;
export type ClientEventName = (typeof CLIENT_EVENTS)[number];
