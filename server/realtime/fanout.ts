import type { FluxoEvent } from '../../shared/protocol.js';
import { internalRoom } from '../../shared/rooms.js';
import type { Metrics } from '../ops/metrics.js';
import type { FluxoServer } from './deps.js';

/**
 * Sends a committed event to each of its rooms with one emit per room. Socket.IO on uWS publishes
 * a single-room broadcast natively (uWS topics, no per-socket JS work) but falls back to a
 * per-socket loop for multi-room broadcasts, so `io.to([a, b, c])` would cost several times more.
 * The price: a socket subscribed to two of the event's rooms receives it twice, with the same
 * id and the same offsets — clients drop what they already have by the room's offset (they must anyway, for replay).
 */
export function createFanout(io: FluxoServer, metrics: Metrics) {
  const emit = (tenant: string, event: FluxoEvent): void => {
    for (const room of event.rooms) io.to(internalRoom(tenant, room)).emit('event', event);
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
