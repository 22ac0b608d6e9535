import type { PresenceMember } from '../../shared/protocol.js';
import { isEmptyChange, type PresenceChange } from '../presence/presence.js';
import type { FluxoServer } from './deps.js';

/** How long changes of one room are gathered before one `presence` message goes out. */
export const PRESENCE_FLUSH_MS = 50;

interface Pending {
  relative: string;
  /** userId → whether the user was in the room when the window opened, and how it ends. */
  users: Map<string, { wasPresent: boolean; last: PresenceMember | null }>;
}

/**
 * Coalesces presence changes per room and sends them to the whole room, sender included.
 * Two reasons: a join storm (a thousand viewers opening a dashboard) would otherwise send one
 * diff per join to every member — quadratic — and a broadcast that excludes the sender
 * (`socket.to(room)`) leaves Socket.IO-on-uWS's native publish for a per-socket loop in JS.
 */
export class PresenceDiffs {
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly io: FluxoServer) {}

  push(internal: string, relative: string, change: PresenceChange): void {
    if (isEmptyChange(change)) return;
    let room = this.pending.get(internal);
    if (!room) {
      room = { relative, users: new Map() };
      this.pending.set(internal, room);
    }
    const note = (userId: string, wasPresent: boolean, last: PresenceMember | null) => {
      const seen = room.users.get(userId);
      room.users.set(userId, { wasPresent: seen ? seen.wasPresent : wasPresent, last });
    };
    for (const m of change.joins) note(m.userId, false, m);
    for (const m of change.updates) note(m.userId, true, m);
    for (const userId of change.leaves) note(userId, true, null);
    this.timer ??= setTimeout(() => this.flush(), PRESENCE_FLUSH_MS);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const [internal, room] of this.pending) {
      const diff = { room: room.relative, joins: [] as PresenceMember[], leaves: [] as string[], updates: [] as PresenceMember[] };
      for (const [userId, { wasPresent, last }] of room.users) {
        if (last && !wasPresent) diff.joins.push(last);
        else if (last) diff.updates.push(last);
        else if (wasPresent) diff.leaves.push(userId);
      }
      if (!isEmptyChange(diff)) this.io.to(internal).emit('presence', diff);
    }
    this.pending.clear();
  }
}
