import type { PresenceMember, PresenceState } from '../../shared/protocol.js';

export interface PresenceConn {
  connId: string;
  userId: string;
  name: string | null;
}

/** What changed in a room; empty arrays when nothing a client can see changed. */
export interface PresenceChange {
  joins: PresenceMember[];
  leaves: string[];
  updates: PresenceMember[];
}

/** Changes that no request of this node made (with Redis: a dead node's entries removed, this node's written again). `room` is the internal name. */
export type PresenceListener = (room: string, change: PresenceChange) => void;

/** No bound on a snapshot: the operator API reads a room's whole list, once, on request. */
export const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/** A room's members, unless it has more connections than the caller's bound: then `members` is empty. */
export interface RoomSnapshot {
  /** Distinct users in the room. */
  count: number;
  /** Connections in the room (a user with two tabs counts twice): what the bound is counted in. */
  connections: number;
  /** Empty when `connections` is over the bound (left out, not read). */
  members: PresenceMember[];
}

/** What PresenceDiffs reads when its window closes (see `members`). */
export interface MembersRead {
  /** Distinct users in the room. */
  count: number;
  /** Connections in the room: what the bound is counted in. */
  connections: number;
  /** How the users asked about stand; empty when `connections` is over the bound (left out, not read). */
  members: Map<string, PresenceMember>;
  /**
   * The room is over the bound and was not at the previous read that found it so, on any node:
   * exactly one read says so per crossing, so the room is told once (PresenceDiffs).
   */
  crossedOver: boolean;
}

/**
 * Who is in which room. Rooms are server-internal names. A user counts once however many
 * connections (tabs, devices, nodes) they have; `connections` says how many.
 */
export interface PresenceStore {
  join(room: string, conn: PresenceConn): Promise<PresenceChange>;
  leave(room: string, connId: string): Promise<PresenceChange>;
  update(room: string, connId: string, state: PresenceState): Promise<PresenceChange>;
  /**
   * The room's members, or only its sizes when it has more than `max` connections: the sizes are
   * read first, in O(1), so a room over the bound costs the same whatever its size. The bound is in
   * connections, not users, because what a member list costs is a diff to every connection in the
   * room at every change — and each new tab of a known user is a change (its `connections`).
   */
  snapshot(room: string, max: number): Promise<RoomSnapshot>;
  /**
   * The room's sizes and how `userIds` stand in it now, whoever changed them last (users not in the
   * room are absent from the map); over `max` connections only the sizes, read in O(1), and whether
   * the room has just crossed over. Rejects when the shared state cannot be read (the caller keeps what it knew).
   */
  members(room: string, userIds: readonly string[], max: number): Promise<MembersRead>;
  /** Starts any background work (with Redis: heartbeats, reaping dead nodes); its changes go to `onChange`. */
  start(onChange: PresenceListener): Promise<void>;
  close(): Promise<void>;
}

export function isEmptyChange(c: PresenceChange): boolean {
  return c.joins.length === 0 && c.leaves.length === 0 && c.updates.length === 0;
}
