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

/**
 * Who is in which room. Rooms are server-internal names. A user counts once however many
 * connections (tabs, devices, nodes) they have; `connections` says how many.
 */
export interface PresenceStore {
  join(room: string, conn: PresenceConn): Promise<PresenceChange>;
  leave(room: string, connId: string): Promise<PresenceChange>;
  update(room: string, connId: string, state: PresenceState): Promise<PresenceChange>;
  snapshot(room: string): Promise<PresenceMember[]>;
  close(): Promise<void>;
}

export function isEmptyChange(c: PresenceChange): boolean {
  return c.joins.length === 0 && c.leaves.length === 0 && c.updates.length === 0;
}
