import { localRevocationBroadcast, type RevocationBroadcast, redisRevocationBroadcast } from './auth/revocation-broadcast.js';
import { createRedisBus, redisTarget } from './bus/bus.js';
import type { RedisClient, RedisTarget } from './bus/connections.js';
import type { Config } from './config/index.js';
import type { Logger } from './ops/logger.js';
import type { Metrics } from './ops/metrics.js';
import { MemoryPresence } from './presence/memory.js';
import type { PresenceStore } from './presence/presence.js';
import { RedisPresence } from './presence/redis.js';
import type { Relay } from './realtime/fanout.js';
import { type AdapterConstructor, redisAdapter } from './realtime/redis-adapter.js';
import type { Recoveries } from './realtime/resync.js';
import { createRedisSurvey } from './survey/redis.js';
import { createLocalSurvey, type NodeBeat, type Survey } from './survey/survey.js';

/**
 * What makes a node one of many, or alone: every part whose implementation depends on it, chosen
 * once, here. `local`: everything in this process. `redis` (REDIS_URL or REDIS_CLUSTER_NODES): one
 * Redis (or Redis Cluster) shared by every node, through the bus' connections (server/bus/).
 */
export interface Backplane {
  readonly kind: 'local' | 'redis';
  /** Socket.IO's cross-node adapter; null: its in-memory one (this node's sockets only). */
  readonly adapter: AdapterConstructor | null;
  /** How committed events cross to the other nodes with this adapter (realtime/fanout.ts). */
  readonly relay: Relay;
  readonly presence: PresenceStore;
  /** Where budgets shared by every node are counted, and whether it answers now; null: each node counts alone, in memory. */
  readonly rateLimitStore: { redis: RedisClient; answering(): boolean } | null;
  readonly revocations: RevocationBroadcast;
  /** The operator API's questions to every node. */
  readonly survey: Survey;
  /** Announces that the shared state is back after an outage; null where nothing can be lost meanwhile. */
  readonly recoveries: Recoveries | null;
  /** Null when ready, else why not (for /ready). */
  notReadyReason(): string | null;
  close(): Promise<void>;
}

export interface BackplaneDeps {
  log: Logger;
  metrics: Metrics;
  /** This node as the survey announces it. */
  self: NodeBeat;
}

/** Redis when the config names one, else local. */
export async function createBackplane(config: Config, deps: BackplaneDeps): Promise<Backplane> {
  const target = redisTarget(config);
  return target ? redisBackplane(config, target, deps) : localBackplane(deps);
}

/** A single node: in-memory presence and budgets, nobody to tell of a revocation, a survey of one. */
export function localBackplane(deps: Pick<BackplaneDeps, 'metrics' | 'self'>): Backplane {
  const presence = new MemoryPresence();
  return {
    kind: 'local',
    adapter: null,
    relay: 'rooms',
    presence,
    rateLimitStore: null,
    revocations: localRevocationBroadcast,
    survey: createLocalSurvey(deps),
    recoveries: null,
    notReadyReason: () => null,
    close: () => presence.close(),
  };
}

/** One of many: fan-out, presence, budgets, revocations and the survey shared through Redis. */
export async function redisBackplane(config: Config, target: RedisTarget, deps: BackplaneDeps): Promise<Backplane> {
  const { log, metrics, self } = deps;
  const prefix = config.redisKeyPrefix;
  const bus = await createRedisBus({ target, prefix, log, metrics, commandTimeoutMs: config.redisCommandTimeoutMs });
  const presence = new RedisPresence({
    redis: bus.client('state'),
    nodeId: config.nodeId,
    prefix,
    ttlMs: config.presenceTtlMs,
    onError: (err, op) => log.warn({ err, op }, 'redis presence degraded to local'),
  });
  // First of the recovery listeners: before clients are told to resync, the presence they will read
  // must be complete again.
  bus.onRecovered(() => presence.reassert());
  log.info({ redis: 'cluster' in target ? 'cluster' : 'single' }, 'redis connected');
  return {
    kind: 'redis',
    adapter: redisAdapter(bus),
    // The classic adapter subscribes every node to all channels; the sharded one only to its rooms'
    // and, for the relay, its tenants' (realtime/redis-adapter.ts).
    relay: 'cluster' in target ? 'tenant' : 'all',
    presence,
    rateLimitStore: { redis: bus.client('limiter'), answering: () => bus.answering('limiter') },
    revocations: redisRevocationBroadcast({ pub: bus.client('state'), sub: bus.client('state-sub'), prefix, nodeId: config.nodeId, log }),
    survey: createRedisSurvey({
      pub: bus.client('state'),
      sub: bus.client('state-sub'),
      prefix,
      self,
      ttlMs: config.presenceTtlMs,
      timeoutMs: config.operatorTimeoutMs,
      log,
      metrics,
    }),
    recoveries: bus,
    notReadyReason: () => bus.notReadyReason(),
    close: async () => {
      await presence.close();
      await bus.close();
    },
  };
}
