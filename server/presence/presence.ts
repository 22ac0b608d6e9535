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

/**
 * Who is in which room. Rooms are server-internal names. A user counts once however many
 * connections (tabs, devices, nodes) they have; `connections` says how many.
 */
export interface PresenceStore {
  join(room: string, conn: PresenceConn): Promise<PresenceChange>;
  leave(room: string, connId: string): Promise<PresenceChange>;
  update(room: string, connId: string, state: PresenceState): Promise<PresenceChange>;
  snapshot(room: string): Promise<PresenceMember[]>;
  /**
   * How `userIds` stand in the room now, whoever changed them last; users not in the room are
   * absent from the map. Rejects when the shared state cannot be read (the caller keeps what it knew).
   */
  members(room: string, userIds: readonly string[]): Promise<Map<string, PresenceMember>>;
  /** Starts any background work (with Redis: heartbeats, reaping dead nodes); its changes go to `onChange`. */
  start(onChange: PresenceListener): Promise<void>;
  close(): Promise<void>;
}

export function isEmptyChange(c: PresenceChange): boolean {
  return c.joins.length === 0 && c.leaves.length === 0 && c.updates.length === 0;
}
