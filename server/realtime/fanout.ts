import type { Namespace } from 'socket.io';
import type { FluxoEvent } from '../../shared/protocol.js';
import { internalRoom } from '../../shared/rooms.js';
import type { Metrics } from '../ops/metrics.js';
import type { FluxoServer } from './deps.js';

/** The adapter message that carries one committed event to the other nodes (`oneMessage` mode). */
const EVENT_RELAY = 'fluxo:event';

export interface FanoutOptions {
  /**
   * True when every node receives every adapter message anyway (the classic Redis adapter
   * subscribes each node to all of a namespace's channels): an event then goes to the other nodes
   * as ONE message, and each node emits it to its own sockets of each room — one PUBLISH (and on
   * each receiving node one decode) per event instead of one per room (issue 13). False: one
   * adapter broadcast per room, for an adapter that routes by room (the sharded one, whose
   * per-room channels reach only the nodes with sockets in that room) or the in-memory one.
   * @default false
   */
  oneMessage?: boolean;
}

/**
 * Sends a committed event to each of its rooms with one emit per room. Socket.IO on uWS publishes
 * a single-room broadcast natively (uWS topics, no per-socket JS work) but falls back to a
 * per-socket loop for multi-room broadcasts, so `io.to([a, b, c])` would cost several times more.
 * The price: a socket subscribed to two of the event's rooms receives it twice, with the same
 * id and the same offsets — clients drop what they already have by the room's offset (they must anyway, for replay).
 * Events leave a node in the order they were handed here, over one connection, in either mode.
 */
export function createFanout(io: FluxoServer, metrics: Metrics, opts: FanoutOptions = {}) {
  const emitLocal = (tenant: string, event: FluxoEvent): void => {
    for (const room of event.rooms) io.local.to(internalRoom(tenant, room)).emit('event', event);
  };
  const nsp = io.of('/') as unknown as Namespace;
  if (opts.oneMessage) {
    nsp.on(EVENT_RELAY, (tenant: unknown, event: unknown) => {
      // Only this namespace's adapter publishes EVENT_RELAY; the check keeps a stray message from throwing.
      if (typeof tenant === 'string' && event !== null && typeof event === 'object' && Array.isArray((event as FluxoEvent).rooms)) {
        emitLocal(tenant, event as FluxoEvent);
      }
    });
  }
  const emit = (tenant: string, event: FluxoEvent): void => {
    if (opts.oneMessage) {
      emitLocal(tenant, event);
      nsp.serverSideEmit(EVENT_RELAY, tenant, event);
    } else for (const room of event.rooms) io.to(internalRoom(tenant, room)).emit('event', event);
    metrics.eventsEmitted.inc({ type: event.type });
    metrics.fanoutSeconds.observe(Math.max(0, Date.now() - Date.parse(event.at)) / 1000);
  };
  // Emitting from inside a uWS callback (an HTTP handler whose store call resolved in the same
  // tick, as PGlite's can) publishes while uWS has the request's socket corked; the bench measured
  // that path at several times the CPU per delivery. The next macrotask is always outside it.
  return (tenant: string, event: FluxoEvent): void => {
    setImmediate(emit, tenant, event);
  };
}
