import type { PresenceDiff, PresenceMember } from '../../shared/protocol.js';
import { isEmptyChange, type PresenceChange, type PresenceStore } from '../presence/presence.js';

/** How long changes of one room are gathered before one `presence` message goes out. */
export const PRESENCE_FLUSH_MS = 50;

/** Where a room's diff goes: Socket.IO's `io`, whose `to(room)` reaches the room on every node (adapter). */
export interface PresenceTarget {
  to(room: string): { emit(event: 'presence', diff: PresenceDiff): unknown };
}

interface Pending {
  relative: string;
  /** userId → whether the user was in the room when the window opened (as this node saw it), and how it ends here. */
  users: Map<string, { wasPresent: boolean; last: PresenceMember | null }>;
}

/**
 * Coalesces presence changes per room and sends them to the whole room, sender included.
 * Two reasons: a join storm (a thousand viewers opening a dashboard) would otherwise send one
 * diff per join to every member — quadratic — and a broadcast that excludes the sender
 * (`socket.to(room)`) leaves Socket.IO-on-uWS's native publish for a per-socket loop in JS.
 *
 * Every presence change goes through here, whatever made it: this node's sockets, the operator
 * API, and the store's own (a dead node's entries reaped, entries re-asserted after a Redis outage).
 *
 * A diff says how each user it names stands *now*, read from the store when the window closes, not
 * what this node last saw: with several nodes, each sends its own diffs, up to a window late, and
 * watchers apply them in arrival order. Built from this node's view alone, a user whose connections
 * were on two nodes could be left a ghost: a join and a leave folded here into nothing while the
 * other node had shown the user meanwhile, or this node's stale "still here" arriving after the
 * other node's final leave. So a user who is gone is always sent as a leave (a leave of someone a
 * watcher never saw is a no-op), and one who is here with the store's current view.
 * (test/integration/presence-cluster.test.ts)
 *
 * A room of more than `maxConnections` connections (PRESENCE_MAX_CONNECTIONS) gets no diffs:
 * coalescing bounds how often a room is told, not how many are told, so a join storm into a room of
 * 100,000 still sent each flush to 100,000 sockets on every node. The bound is in connections, not
 * distinct users, because connections are who each diff goes to, and every new tab of a user already
 * in the room is a change too (its `connections`): a room of 100 users with 1,000 tabs each never
 * crossed a bound of 1,000 users while every join went to everyone. The read that finds the room
 * over the bound costs O(1) (its sizes, no member), and the first one after the room crossed over —
 * whichever node makes it — sends one diff naming nobody, `truncated: true`, so members know their
 * lists stop being kept. Back at or under the bound, diffs resume with the changes from then on; a
 * member's list is complete again only after it subscribes again (the ack carries the whole list).
 * With `maxConnections` 0, presence lists are off: nothing is read or sent at all.
 */
export class PresenceDiffs {
  private pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | null = null;
  /** The flush being sent: the next one waits for it, so one room's diffs leave this node in order. */
  private sending: Promise<void> = Promise.resolve();
  /**
   * Rooms this node's last read found over the bound: while the store cannot answer (Redis away),
   * they stay silent rather than flooding every member with what this node saw — an outage is the
   * worst time for a diff to 100,000 sockets per flush.
   */
  private readonly over = new Set<string>();

  constructor(
    private readonly target: PresenceTarget,
    private readonly presence: Pick<PresenceStore, 'members'>,
    private readonly maxConnections: number,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  push(internal: string, relative: string, change: PresenceChange): void {
    if (this.maxConnections === 0 || isEmptyChange(change)) return;
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
    this.timer ??= setTimeout(() => void this.flush(), PRESENCE_FLUSH_MS);
  }

  /**
   * Sends what was gathered; resolves once it (and every earlier flush) is sent. The rooms are read
   * together and sent in the order they first changed: whatever one room's diff says, a diff of
   * another room that changed later on this node comes after it (a client can use one as a barrier).
   */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = [...this.pending];
    this.pending = new Map();
    this.sending = this.sending
      .then(async () => {
        const diffs = await Promise.all(batch.map(([internal, room]) => this.diffOf(internal, room)));
        batch.forEach(([internal], i) => {
          const diff = diffs[i];
          if (diff) this.target.to(internal).emit('presence', diff);
        });
      })
      // Every later flush waits on this chain: one that failed must not stop them all.
      .catch(this.onError);
    return this.sending;
  }

  /** The room's diff, or null when it is over the bound and was so already. */
  private async diffOf(internal: string, room: Pending): Promise<PresenceDiff | null> {
    const read = await this.presence.members(internal, [...room.users.keys()], this.maxConnections).catch(() => null);
    if (!read && this.over.has(internal)) return null;
    if (read && read.connections > this.maxConnections) {
      this.over.add(internal);
      return read.crossedOver ? { room: room.relative, joins: [], leaves: [], updates: [], count: read.count, truncated: true } : null;
    }
    if (read) this.over.delete(internal);
    const diff: PresenceDiff = { room: room.relative, joins: [], leaves: [], updates: [], truncated: false };
    if (read) diff.count = read.count;
    for (const [userId, { wasPresent, last }] of room.users) {
      // Without the store's answer (Redis away), what this node saw last.
      const current = read ? (read.members.get(userId) ?? null) : last;
      if (!current) diff.leaves.push(userId);
      else if (wasPresent) diff.updates.push(current);
      else diff.joins.push(current);
    }
    return diff;
  }
}
