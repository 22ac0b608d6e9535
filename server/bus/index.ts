import type { RevocationStore, Revocations } from '../auth/revocations.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { RedisPresence } from '../presence/redis.js';
import type { FluxoServer } from '../realtime/deps.js';
import { relayDisconnects } from '../realtime/disconnects.js';
import { createRedisBus, type RedisBus, redisTarget } from './bus.js';
import { broadcastRevocations } from './revocations.js';

export type { RedisBus } from './bus.js';

/** What a node needs from Redis to be one of many; built once in the composition root. */
export interface ClusterParts {
  bus: RedisBus;
  presence: RedisPresence;
  /** Give this to `Revocations`: it publishes every revocation to the other nodes. */
  revocationStore: RevocationStore;
  /** Wires io: the adapter, cross-node presence diffs, `resync` after an outage, revocations in. */
  attach(io: FluxoServer, revocations: Revocations): Promise<void>;
  close(): Promise<void>;
}

/** Null without REDIS_URL / REDIS_CLUSTER_NODES (a single node keeps everything in memory). */
export async function createClusterParts(
  config: Config,
  deps: { log: Logger; metrics: Metrics; revocationStore: RevocationStore },
): Promise<ClusterParts | null> {
  const target = redisTarget(config);
  if (!target) return null;
  const { log, metrics } = deps;
  const bus = await createRedisBus({
    target,
    prefix: config.redisKeyPrefix,
    log,
    metrics,
    commandTimeoutMs: config.redisCommandTimeoutMs,
  });
  let io: FluxoServer | null = null;
  const presence = new RedisPresence({
    redis: bus.client('state'),
    nodeId: config.nodeId,
    prefix: config.redisKeyPrefix,
    ttlMs: config.presenceTtlMs,
    // Goes through the adapter, so clients on every node get the diff (from one node only).
    onChange: (room, change) => io?.to(room).emit('presence', { room: relativeRoom(room), ...change }),
    onError: (err, op) => log.warn({ err, op }, 'redis presence degraded to local'),
  });
  const revocations = broadcastRevocations(bus, deps.revocationStore, config.nodeId, log);
  // Before clients are told to resync, the presence they will read must be complete again.
  bus.onRecovered(() => presence.reassert());
  log.info({ redis: 'cluster' in target ? 'cluster' : 'single' }, 'redis connected');

  return {
    bus,
    presence,
    revocationStore: revocations.store,
    attach: async (server, revs) => {
      io = server;
      server.adapter(bus.adapter());
      relayDisconnects(server);
      bus.attachIo(server);
      await revocations.listen(revs);
      await presence.start();
    },
    close: async () => {
      await presence.close();
      await bus.close();
    },
  };
}

/** `t:<tenant>:<room>` → `<room>` (tenant ids contain no ':'). */
function relativeRoom(internal: string): string {
  const rest = internal.slice(2);
  return rest.slice(rest.indexOf(':') + 1);
}
