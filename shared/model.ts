/*
 * The data Fluxo's API speaks about — workflows, processes, their events, presence — as the HTTP
 * API and the socket contract (contract.ts) carry it. No runtime dependency: the SDK bundles it.
 * Import it through shared/protocol.ts, which re-exports it.
 */

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

/** Where a room's stream stands (see "Room streams" in protocol.ts). */
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
  /** `offsets[i]` is this event's offset in `rooms[i]` (see "Room streams" in protocol.ts). */
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

/**
 * How the users it names stand now in a room of at most the server's PRESENCE_MAX_CONNECTIONS
 * connections (a user with two tabs counts twice). A room over that bound gets no diffs: one diff naming nobody with `truncated: true` says it
 * crossed over (drop the list, it is no longer kept); back at or under it, diffs resume with the
 * changes from then on, and the whole list comes with the next subscribe.
 */
export interface PresenceDiff {
  room: string;
  joins: PresenceMember[];
  leaves: string[];
  updates: PresenceMember[];
  /** Distinct users in the room when the sending node read it; absent when it could not (Redis away). */
  count?: number;
  /** True once, when the room went over the bound: this diff names nobody and none follows while it stays over. */
  truncated: boolean;
}
