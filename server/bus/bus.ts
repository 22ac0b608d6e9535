import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { Counter, Gauge } from 'prom-client';
import type { Config } from '../config/index.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { FluxoServer } from '../realtime/deps.js';
import { connect, type RedisClient, type RedisRole, type RedisTarget, ROLES, whenReady } from './connections.js';

export interface RedisBus {
  readonly target: RedisTarget;
  readonly prefix: string;
  /** The connection for one job. */
  client(role: RedisRole): RedisClient;
  /** For `io.adapter(...)`: the classic adapter on one Redis, the sharded one on a cluster. */
  adapter(): ReturnType<typeof createAdapter>;
  /** Null when every connection is up, else which are not (for /ready). */
  notReadyReason(): string | null;
  /**
   * Runs after Redis came back (every connection ready again after one dropped), in order of
   * registration; the bus then tells every local socket to `resync` its rooms.
   */
  onRecovered(fn: () => Promise<void> | void): void;
  /** Sends `resync` with each local socket's rooms after a recovery. Call once io exists. */
  attachIo(io: FluxoServer): void;
  close(): Promise<void>;
}

/** Where Redis is, from the config; null without Redis (single node). */
export function redisTarget(config: Config): RedisTarget | null {
  if (config.redisClusterNodes.length > 0) return { cluster: config.redisClusterNodes };
  if (config.redisUrl) return { url: config.redisUrl };
  return null;
}

/**
 * Opens the Redis connections (one per job), watches them (`redis_connected{role}`), and after an
 * outage re-runs the recovery hooks and asks clients to replay what they may have missed.
 */
export async function createRedisBus(opts: { target: RedisTarget; prefix: string; log: Logger; metrics: Metrics }): Promise<RedisBus> {
  const { target, log, metrics } = opts;
  const connected = new Gauge({
    name: 'redis_connected',
    help: '1 when the Redis connection for this job is ready',
    labelNames: ['role'] as const,
    registers: [metrics.registry],
  });
  const resyncs = new Counter({
    name: 'redis_resyncs_total',
    help: 'Times this node told its clients to resync after a Redis outage',
    registers: [metrics.registry],
  });

  const clients = new Map<RedisRole, RedisClient>();
  const down = new Set<RedisRole>(ROLES);
  let everReady = false;
  let outage = false;
  let closed = false;
  let io: FluxoServer | null = null;
  const hooks: (() => Promise<void> | void)[] = [];
  let recovering: Promise<void> | null = null;

  const recover = async () => {
    for (const hook of hooks) {
      try {
        await hook();
      } catch (err) {
        log.warn({ err }, 'redis recovery hook failed');
      }
    }
    if (!io) return;
    // Events published while the subscription was down never reached this node: every client
    // replays its rooms from its last event id (duplicates are dropped by id).
    const sockets = io.of('/').sockets;
    for (const socket of sockets.values()) {
      socket.emit('resync', { rooms: [...(socket.data.rooms ?? [])] });
    }
    resyncs.inc();
    log.info({ sockets: sockets.size }, 'redis is back: clients told to resync');
  };

  /** After an outage, once every connection is ready; again if another outage began meanwhile. */
  const maybeRecover = () => {
    if (down.size > 0 || !outage || recovering || closed) return;
    outage = false;
    log.info('redis connections ready again');
    recovering = recover().finally(() => {
      recovering = null;
      maybeRecover();
    });
  };

  for (const role of ROLES) {
    const client = connect(target, role);
    clients.set(role, client);
    connected.set({ role }, 0);
    client.on('error', (err: Error) => log.debug({ err: err.message, role }, 'redis error'));
    client.on('close', () => {
      if (closed) return;
      if (!down.has(role)) log.warn({ role }, 'redis connection lost');
      down.add(role);
      connected.set({ role }, 0);
      if (everReady) outage = true;
    });
    client.on('ready', () => {
      down.delete(role);
      connected.set({ role }, 1);
      if (down.size > 0) return;
      if (!everReady) {
        everReady = true;
        return;
      }
      maybeRecover();
    });
  }

  try {
    await Promise.all(ROLES.map((role) => whenReady(clients.get(role) as RedisClient, role)));
  } catch (err) {
    for (const c of clients.values()) c.disconnect();
    throw err;
  }
  everReady = true;

  const get = (role: RedisRole) => clients.get(role) as RedisClient;
  return {
    target,
    prefix: opts.prefix,
    client: get,
    adapter: () =>
      'cluster' in target
        ? // Redis 7 sharded Pub/Sub: each room's channel lives on one shard, so a publish costs one
          // shard instead of being broadcast to the whole cluster; 'dynamic' = one channel per room.
          (createShardedAdapter(get('adapter-pub'), get('adapter-sub'), {
            channelPrefix: `${opts.prefix}:sio`,
            subscriptionMode: 'dynamic',
          }) as unknown as ReturnType<typeof createAdapter>)
        : createAdapter(get('adapter-pub'), get('adapter-sub'), { key: `${opts.prefix}:sio` }),
    notReadyReason: () => (down.size === 0 ? null : `redis not connected (${[...down].join(', ')})`),
    onRecovered: (fn) => {
      hooks.push(fn);
    },
    attachIo: (server) => {
      io = server;
    },
    close: async () => {
      closed = true;
      await recovering;
      await Promise.all(
        [...clients.values()].map((c) =>
          c.quit().then(
            () => undefined,
            () => c.disconnect(),
          ),
        ),
      );
    },
  };
}
