import { Counter } from 'prom-client';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { FluxoServer } from './deps.js';

/** Where "the bus is back after an outage" is announced (the backplane; never, on a single node). */
export interface Recoveries {
  onRecovered(fn: () => Promise<void> | void): void;
}

/**
 * After a bus outage, tells every socket of this node to `resync` its rooms: events published while
 * the subscription was down never reached this node, so each client replays each room from its own
 * position (its last offset; repeats are dropped by offset). Install it after the listeners that rebuild shared state
 * (presence) so that what clients read then is complete again.
 */
export function resyncAfterRecovery(io: FluxoServer, bus: Recoveries, deps: { metrics: Metrics; log: Logger }): void {
  const resyncs = new Counter({
    name: 'redis_resyncs_total',
    help: 'Times this node told its clients to resync after a Redis outage',
    registers: [deps.metrics.registry],
  });
  bus.onRecovered(() => {
    const sockets = io.of('/').sockets;
    for (const socket of sockets.values()) {
      socket.emit('resync', { rooms: [...(socket.data.rooms ?? [])] });
    }
    resyncs.inc();
    deps.log.info({ sockets: sockets.size }, 'redis is back: clients told to resync');
  });
}
