import type { PresenceMember, PresenceState } from '../../shared/protocol.js';
import type { MembersRead, PresenceChange, PresenceConn, PresenceStore, RoomSnapshot } from './presence.js';

interface Member {
  userId: string;
  name: string | null;
  conns: Set<string>;
  state: PresenceState | null;
}

const NONE: PresenceChange = { joins: [], leaves: [], updates: [] };

function view(m: Member): PresenceMember {
  return { userId: m.userId, name: m.name, connections: m.conns.size, state: m.state };
}

/** Presence for a single node. */
export class MemoryPresence implements PresenceStore {
  private readonly rooms = new Map<string, Map<string, Member>>();
  private readonly connUser = new Map<string, string>();
  /** Connections per room (what the bound is counted in), kept so a read of a huge room is O(1). */
  private readonly connCount = new Map<string, number>();
  /** Rooms the last `members` read found over its bound (what Redis keeps in `pt`). */
  private readonly over = new Set<string>();

  async join(room: string, conn: PresenceConn): Promise<PresenceChange> {
    let members = this.rooms.get(room);
    if (!members) {
      members = new Map();
      this.rooms.set(room, members);
    }
    this.connUser.set(`${room}\0${conn.connId}`, conn.userId);
    const existing = members.get(conn.userId);
    if (existing) {
      if (existing.conns.has(conn.connId)) return NONE;
      existing.conns.add(conn.connId);
      this.countConn(room, 1);
      return { joins: [], leaves: [], updates: [view(existing)] };
    }
    const member: Member = { userId: conn.userId, name: conn.name, conns: new Set([conn.connId]), state: null };
    members.set(conn.userId, member);
    this.countConn(room, 1);
    return { joins: [view(member)], leaves: [], updates: [] };
  }

  async leave(room: string, connId: string): Promise<PresenceChange> {
    const key = `${room}\0${connId}`;
    const userId = this.connUser.get(key);
    const members = this.rooms.get(room);
    const member = userId === undefined ? undefined : members?.get(userId);
    if (!members || !member || userId === undefined) return NONE;
    this.connUser.delete(key);
    member.conns.delete(connId);
    this.countConn(room, -1);
    if (member.conns.size > 0) return { joins: [], leaves: [], updates: [view(member)] };
    members.delete(userId);
    if (members.size === 0) this.rooms.delete(room);
    return { joins: [], leaves: [userId], updates: [] };
  }

  async update(room: string, connId: string, state: PresenceState): Promise<PresenceChange> {
    const userId = this.connUser.get(`${room}\0${connId}`);
    const member = userId === undefined ? undefined : this.rooms.get(room)?.get(userId);
    if (!member) return NONE;
    member.state = state;
    return { joins: [], leaves: [], updates: [view(member)] };
  }

  async snapshot(room: string, max: number): Promise<RoomSnapshot> {
    const members = this.rooms.get(room);
    const connections = this.connCount.get(room) ?? 0;
    return { count: members?.size ?? 0, connections, members: connections > max || !members ? [] : [...members.values()].map(view) };
  }

  async members(room: string, userIds: readonly string[], max: number): Promise<MembersRead> {
    const members = this.rooms.get(room);
    const [count, connections] = [members?.size ?? 0, this.connCount.get(room) ?? 0];
    const out = new Map<string, PresenceMember>();
    if (connections > max) {
      const crossedOver = !this.over.has(room);
      this.over.add(room);
      return { count, connections, members: out, crossedOver };
    }
    this.over.delete(room);
    for (const userId of userIds) {
      const m = members?.get(userId);
      if (m) out.set(userId, view(m));
    }
    return { count, connections, members: out, crossedOver: false };
  }

  private countConn(room: string, by: 1 | -1): void {
    const n = (this.connCount.get(room) ?? 0) + by;
    if (n > 0) this.connCount.set(room, n);
    else this.connCount.delete(room);
  }

  /** Nothing runs in the background: every change is made by a request of this node. */
  async start(): Promise<void> {}

  async close(): Promise<void> {
    this.rooms.clear();
    this.connUser.clear();
    this.connCount.clear();
    this.over.clear();
  }
}
