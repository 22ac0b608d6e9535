import { Counter } from 'prom-client';
import type { FluxoEvent, RoomPosition } from '../../shared/protocol.js';
import { internalRoom } from '../../shared/rooms.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { RoomHead, RoomKey } from '../store/store.js';
import type { FluxoServer } from './deps.js';

export interface RoomTailsDeps {
  io: FluxoServer;
  /** The heads of these rooms in the log, read on the primary (rooms without an event may be left out). */
  heads(keys: RoomKey[]): Promise<RoomHead[]>;
  /** Events of the room with id > `after`, oldest first, at most `limit`, read on the primary. */
  eventsAfter(tenant: string, room: string, after: number, limit: number): Promise<{ events: FluxoEvent[]; more: boolean }>;
  /** How often the heads are read (ROOM_TAIL_CHECK_MS). */
  everyMs: number;
  metrics: Metrics;
  log: Logger;
}

/** Events sent to one room in one repair; more wait for the next check. */
const REPAIR_LIMIT = 100;
/** Rooms whose heads one query reads. */
const HEADS_PER_QUERY = 1000;

interface Seen extends RoomKey {
  /** Up to where every socket of the room here has been sent its events (or covered by its own subscribe). */
  offset: number;
  id: number;
  /** `offset` when a check last found the log ahead of it. */
  behindAt?: number;
}

/**
 * Sends the events that were committed and never sent: their node died (or froze for good) between
 * its COMMIT and its publish, so nobody sends them. A subscriber notices a missing event when the
 * room's next one arrives (a gap, filled from the log: protocol.ts rule 4), but the LAST events of a
 * room have no next one — a dashboard would show the state before them until the room changes
 * again, maybe never. The same holds for an event whose relay message was lost on its way.
 *
 * So each node remembers, for every room it has sockets in, up to which offset all of them have
 * been sent the room's events (what it sent, or the head the first subscribe here read), and every
 * `everyMs` reads those rooms' heads from the log. A room whose head is ahead of what this node
 * sent, at two checks in a row with nothing sent in between, has lost its tail: the node reads the
 * missing events from the log and sends them to its own sockets of the room. Waiting a whole
 * interval leaves alone the events a live node has committed and is about to send; a late one that
 * comes after all is a repeat, which subscribers drop by offset (protocol.ts rule 2). Centrifugo's
 * position check is the same idea, run by its clients.
 */
export class RoomTails {
  readonly #seen = new Map<string, Seen>();
  readonly #deps: RoomTailsDeps;
  readonly #repaired: Counter;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #failing = false;

  constructor(deps: RoomTailsDeps) {
    this.#deps = deps;
    this.#repaired = new Counter({
      name: 'ws_tail_events_resent_total',
      help: 'Events committed and not sent (their node died between commit and publish), found in the log by the tail check and sent to this node’s sockets',
      registers: [deps.metrics.registry],
    });
  }

  /**
   * This node sent its sockets of `room` (internal name) the event at `offset` (fanout calls it for
   * every event and room, local or relayed: kept to two map lookups).
   */
  sent(room: string, offset: number, id: number): void {
    const seen = this.#seen.get(room);
    if (seen) {
      if (offset > seen.offset) {
        seen.offset = offset;
        seen.id = id;
      }
    } else if (this.#rooms().has(room)) {
      const key = keyOf(room);
      if (key) this.#seen.set(room, { ...key, offset, id });
    }
  }

  /**
   * A subscribe here read the room's head: the events up to it are that client's concern (its
   * replay), and the ones after it are this node's to send. Never raises what the room was sent:
   * the other sockets of the room were not given what that head covers (a socket subscribing after
   * a lost event would otherwise hide it from those already there). A head below it lowers it: the
   * events in between may have been sent before this socket joined.
   */
  subscribed(tenant: string, room: string, position: RoomPosition): void {
    const name = internalRoom(tenant, room);
    const seen = this.#seen.get(name);
    if (!seen) this.#seen.set(name, { tenant, room, offset: position.offset, id: position.id });
    else if (position.offset < seen.offset) {
      seen.offset = position.offset;
      seen.id = position.id;
    }
  }

  /** This node's rooms (the adapter's map: internal name → its local sockets). */
  #rooms(): Map<string, Set<string>> {
    return this.#deps.io.of('/').adapter.rooms;
  }

  start(): void {
    if (this.#deps.everyMs <= 0 || this.#timer) return;
    this.#timer = setInterval(() => {
      this.#running ??= this.#check().finally(() => {
        this.#running = null;
      });
    }, this.#deps.everyMs).unref();
  }

  /** Stops the checks; resolves once one under way has finished. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** One check: reads the heads of this node's rooms and repairs those behind twice in a row. */
  async #check(): Promise<void> {
    const rooms = this.#rooms();
    for (const name of this.#seen.keys()) if (!rooms.has(name)) this.#seen.delete(name);
    const keys = [...this.#seen.values()].map(({ tenant, room }) => ({ tenant, room }));
    try {
      for (let i = 0; i < keys.length; i += HEADS_PER_QUERY) {
        for (const head of await this.#deps.heads(keys.slice(i, i + HEADS_PER_QUERY))) await this.#compare(head);
      }
      this.#failing = false;
    } catch (err) {
      // The database is away: /ready and the writes say so; one warning per outage is enough.
      if (!this.#failing) this.#deps.log.warn({ err: (err as Error).message }, 'room tail check failed');
      this.#failing = true;
    }
  }

  async #compare(head: RoomHead): Promise<void> {
    const name = internalRoom(head.tenant, head.room);
    const seen = this.#seen.get(name);
    if (!seen || head.offset <= seen.offset) {
      if (seen) seen.behindAt = undefined;
      return;
    }
    if (seen.behindAt !== seen.offset) {
      seen.behindAt = seen.offset;
      return;
    }
    const { events, more } = await this.#deps.eventsAfter(head.tenant, head.room, seen.id, REPAIR_LIMIT);
    let resent = 0;
    for (const event of events) {
      const offset = event.offsets[event.rooms.indexOf(head.room)];
      if (offset === undefined || offset <= seen.offset) continue;
      this.#deps.io.local.to(name).emit('event', event);
      seen.offset = offset;
      seen.id = event.id;
      resent++;
    }
    // A full (or byte-cut) page: the rest follows at the next check, without waiting another one.
    if (more) seen.behindAt = seen.offset;
    if (resent > 0) {
      this.#repaired.inc(resent);
      this.#deps.log.warn(
        { tenant: head.tenant, room: head.room, events: resent },
        'events committed and never sent (their node died before publishing) sent from the log',
      );
    }
  }
}

/** `t:<tenant>:<room>` → its parts (tenant ids never contain ':'); null for any other room (a socket's own). */
function keyOf(name: string): RoomKey | null {
  if (!name.startsWith('t:')) return null;
  const colon = name.indexOf(':', 2);
  return colon < 0 ? null : { tenant: name.slice(2, colon), room: name.slice(colon + 1) };
}
