import type { Namespace } from 'socket.io';
import type { FluxoEvent } from '../../shared/protocol.js';
import { internalRoom } from '../../shared/rooms.js';
import type { Metrics } from '../ops/metrics.js';
import type { FluxoServer } from './deps.js';
import { EVENTS_RELAY } from './relay.js';

/** The previous version's one-event message, still heard so that a rolling upgrade loses nothing from old nodes. */
const EVENT_RELAY = 'fluxo:event';

type Relayed = [tenant: string, event: FluxoEvent];

const isEvent = (event: unknown): event is FluxoEvent =>
  event !== null && typeof event === 'object' && Array.isArray((event as FluxoEvent).rooms);

/**
 * How committed events reach the other nodes:
 * - `all`: the events of one turn of the event loop (a committed batch's) go as ONE adapter message,
 *   and each node emits them to its own sockets of each room — one PUBLISH (and on each node one
 *   decode) per batch instead of one per room of each event (issue 13). For the classic Redis
 *   adapter, which delivers every message to every node anyway.
 * - `tenant`: the same, as one message per tenant of the batch, which the sharded adapter sends on
 *   that tenant's channel, heard only by the nodes with its sockets (realtime/redis-adapter.ts).
 * - `rooms`: one adapter broadcast per room of each event (the in-memory adapter: this node only).
 */
export type Relay = 'all' | 'tenant' | 'rooms';

export interface FanoutOptions {
  /** @default 'rooms' */
  relay?: Relay;
  /**
   * Told of every event this node sends to its own sockets, room by room (internal name, the event's
   * offset there, its id): the tail check, realtime/room-tails.ts.
   */
  sent?: (room: string, offset: number, id: number) => void;
}

/**
 * Sends committed events to each of their rooms with one emit per room. Socket.IO on uWS publishes
 * a single-room broadcast natively (uWS topics, no per-socket JS work) but falls back to a
 * per-socket loop for multi-room broadcasts, so `io.to([a, b, c])` would cost several times more.
 * The price: a socket subscribed to two of the event's rooms receives it twice, with the same
 * id and the same offsets — clients drop what they already have by the room's offset (they must anyway, for replay).
 * Events leave a node in the order they were handed here, over one connection, in either mode.
 */
export function createFanout(io: FluxoServer, metrics: Metrics, opts: FanoutOptions = {}) {
  const sent = opts.sent;
  const emitLocal = (tenant: string, event: FluxoEvent): void => {
    const { rooms, offsets } = event;
    for (let i = 0; i < rooms.length; i++) {
      const room = internalRoom(tenant, rooms[i]!);
      io.local.to(room).emit('event', event);
      if (sent) sent(room, offsets[i]!, event.id);
    }
  };
  const nsp = io.of('/') as unknown as Namespace;
  const relay = opts.relay ?? 'rooms';
  if (relay !== 'rooms') {
    // Only this namespace's adapter publishes these; the checks keep a stray message from throwing.
    nsp.on(EVENTS_RELAY, (relayed: unknown) => {
      if (!Array.isArray(relayed)) return;
      for (const r of relayed as unknown[]) {
        if (Array.isArray(r) && typeof r[0] === 'string' && isEvent(r[1])) emitLocal(r[0], r[1]);
      }
    });
    nsp.on(EVENT_RELAY, (tenant: unknown, event: unknown) => {
      if (typeof tenant === 'string' && isEvent(event)) emitLocal(tenant, event);
    });
  }
  let pending: Relayed[] = [];
  const flush = (): void => {
    const relayed = pending;
    pending = [];
    for (const [tenant, event] of relayed) {
      if (relay !== 'rooms') emitLocal(tenant, event);
      else for (const room of event.rooms) io.to(internalRoom(tenant, room)).emit('event', event);
      metrics.eventsEmitted.inc({ type: event.type });
      metrics.fanoutSeconds.observe(Math.max(0, Date.now() - Date.parse(event.at)) / 1000);
    }
    if (relay === 'all') nsp.serverSideEmit(EVENTS_RELAY, relayed);
    if (relay === 'tenant') for (const one of byTenant(relayed)) nsp.serverSideEmit(EVENTS_RELAY, one);
  };
  // Emitting from inside a uWS callback (an HTTP handler whose store call resolved in the same
  // tick, as PGlite's can) publishes while uWS has the request's socket corked; the bench measured
  // that path at several times the CPU per delivery. The next macrotask is always outside it, and
  // gathers every event committed meanwhile (a batch's) into one relay.
  return (tenant: string, event: FluxoEvent): void => {
    if (pending.length === 0) setImmediate(flush);
    pending.push([tenant, event]);
  };
}

/** The relayed events split by tenant, each tenant's in the order handed, tenants in order of first appearance. */
function byTenant(relayed: Relayed[]): Relayed[][] {
  const groups = new Map<string, Relayed[]>();
  for (const r of relayed) {
    const group = groups.get(r[0]);
    if (group) group.push(r);
    else groups.set(r[0], [r]);
  }
  return [...groups.values()];
}
