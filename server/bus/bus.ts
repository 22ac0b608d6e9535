import type { Cluster } from 'ioredis';
import { Gauge } from 'prom-client';
import type { Config } from '../config/index.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { connect, type RedisClient, type RedisRole, type RedisTarget, ROLES, whenReady } from './connections.js';
import { type ShardWatch, watchShards } from './shards.js';

export interface RedisBus {
  readonly target: RedisTarget;
  readonly prefix: string;
  /** The connection for one job. */
  client(role: RedisRole): RedisClient;
  /**
   * Null when every connection is up and answered its last PING (one a second, each within the
   * command timeout), else which are not (for /ready). A frozen Redis keeps its connections open:
   * only the PING tells.
   */
  notReadyReason(): string | null;
  /** False while `role`'s connection is down or did not answer its last PING in time. */
  answering(role: RedisRole): boolean;
  /**
   * Runs `fn` after Redis came back (every connection ready again after one dropped), awaited one
   * after another in order of registration: what others rebuild first (presence) is complete before
   * what is told later (clients asked to resync) reads it.
   */
  onRecovered(fn: () => Promise<void> | void): void;
  close(): Promise<void>;
}

/** How often each connection is PINGed (see notReadyReason). */
const PROBE_EVERY_MS = 1000;

/** Where Redis is, from the config; null without Redis (single node). */
export function redisTarget(config: Config): RedisTarget | null {
  if (config.redisClusterNodes.length > 0) return { cluster: config.redisClusterNodes };
  if (config.redisUrl) return { url: config.redisUrl };
  return null;
}

/**
 * Opens the Redis connections (one per job), watches them (`redis_connected{role}`, a PING a
 * second), and after an outage runs the `onRecovered` listeners. What each concept does with Redis
 * lives with the concept (presence/redis.ts, auth/revocation-broadcast.ts, survey/redis.ts,
 * realtime/redis-adapter.ts); this file holds only the connections and their health.
 */
export async function createRedisBus(opts: {
  target: RedisTarget;
  prefix: string;
  log: Logger;
  metrics: Metrics;
  /** REDIS_COMMAND_TIMEOUT_MS: every command's reply deadline, PINGs included. */
  commandTimeoutMs?: number;
}): Promise<RedisBus> {
  const { target, log, metrics } = opts;
  const connected = new Gauge({
    name: 'redis_connected',
    help: '1 when the Redis connection for this job is ready',
    labelNames: ['role'] as const,
    registers: [metrics.registry],
  });

  const clients = new Map<RedisRole, RedisClient>();
  const down = new Set<RedisRole>(ROLES);
  /** Connected, but the last PING got no answer within the command timeout. */
  const silent = new Set<RedisRole>();
  const probing = new Set<RedisRole>();
  let everReady = false;
  let outage = false;
  let closed = false;
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
  };

  /** On a Redis Cluster: which masters deliver (shards.ts); null on one Redis. */
  let shards: ShardWatch | null = null;

  /** After an outage, once every connection is ready (and every shard delivers); again if another outage began meanwhile. */
  const maybeRecover = () => {
    if (down.size > 0 || !outage || recovering || closed || (shards?.broken().length ?? 0) > 0) return;
    outage = false;
    log.info('redis connections ready again');
    recovering = recover().finally(() => {
      recovering = null;
      maybeRecover();
    });
  };

  for (const role of ROLES) {
    const client = connect(target, role, opts.commandTimeoutMs);
    // state-sub too: with the command timeout (connections.ts), ioredis' own resubscribe after a
    // reconnect — unawaited — can reject as well.
    if (role === 'adapter-pub' || role === 'adapter-sub' || role === 'state-sub') {
      handleRejections(client, (err, command) => log.debug({ err: (err as Error).message, role, command }, 'redis command failed'));
    }
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
      silent.delete(role);
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
  if ('cluster' in target) {
    // One master lost is no `close` of a Cluster client: the shard watch tells.
    shards = watchShards({
      pub: clients.get('adapter-pub') as Cluster,
      sub: clients.get('adapter-sub') as Cluster,
      prefix: opts.prefix,
      everyMs: PROBE_EVERY_MS,
      log,
      onLost: () => {
        outage = true;
      },
      onWhole: maybeRecover,
    });
  }

  // Cheap (one PING per connection a second) and independent of how often /ready is asked.
  const probe = () => {
    for (const role of ROLES) {
      const client = clients.get(role) as RedisClient;
      if (closed || client.status !== 'ready' || probing.has(role)) continue;
      probing.add(role);
      client
        .ping()
        .then(
          () => {
            if (silent.delete(role)) log.info({ role }, 'redis answers again');
          },
          (err: Error) => {
            if (!silent.has(role)) log.warn({ role, err: err.message }, 'redis not answering');
            silent.add(role);
          },
        )
        .finally(() => probing.delete(role));
    }
  };
  const probeTimer = setInterval(probe, PROBE_EVERY_MS).unref();

  const get = (role: RedisRole) => clients.get(role) as RedisClient;
  return {
    target,
    prefix: opts.prefix,
    client: get,
    notReadyReason: () => {
      if (down.size > 0) return `redis not connected (${[...down].join(', ')})`;
      if (silent.size > 0) return `redis not answering (${[...silent].join(', ')})`;
      const broken = shards?.broken() ?? [];
      if (broken.length > 0) return `redis cluster shard not delivering (${broken.join(', ')})`;
      return null;
    },
    answering: (role) => !down.has(role) && !silent.has(role),
    onRecovered: (fn) => {
      hooks.push(fn);
    },
    close: async () => {
      closed = true;
      clearInterval(probeTimer);
      shards?.close();
      await recovering;
      await Promise.all([...clients.values()].map((c) => closeClient(c)));
    },
  };
}

/**
 * QUIT, so that what was sent before it (a drain's last publishes) is delivered first. A connection
 * that is not up is dropped at once: its QUIT would wait in the offline queue for a reconnect. A
 * Redis that stopped answering is dropped after `ms`. Never rejects.
 */
async function closeClient(client: RedisClient, ms = 2000): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  // Auto-pipelined commands (adapter-pub, limiter: see connections.ts) are written at the next
  // setImmediate, QUIT at once: without this wait a publish issued just before close() follows the
  // QUIT and fails with "Connection is closed." (seen: a drain's last presence diffs were lost).
  for (let i = 0; i < 10 && client.autoPipelineQueueSize > 0; i++) await new Promise((resolve) => setImmediate(resolve));
  let timer: NodeJS.Timeout | undefined;
  const quit = client.quit().then(
    () => true,
    () => false,
  );
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const done = await Promise.race([quit, late]);
  clearTimeout(timer);
  if (!done) client.disconnect();
}

/** Commands the Socket.IO Redis adapters send without awaiting the promise ioredis returns. */
const FIRE_AND_FORGET = ['publish', 'spublish', 'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe'];

/**
 * The adapters publish on every emit and (un)subscribe in `close()` without awaiting: one of those
 * rejected — Redis away, or the connection already closed by a drain ("Connection is closed.") — was
 * an unhandled rejection, which ends the process with code 1. Each such promise gets a handler here
 * (`onError`); a caller that does await it still sees the rejection.
 */
function handleRejections(client: RedisClient, onError: (err: unknown, command: string) => void): void {
  const methods = client as unknown as Record<string, unknown>;
  for (const name of FIRE_AND_FORGET) {
    const original = methods[name];
    if (typeof original !== 'function') continue;
    methods[name] = function (this: unknown, ...args: unknown[]) {
      const result: unknown = original.apply(this, args);
      if (result instanceof Promise) result.catch((err: unknown) => onError(err, name));
      return result;
    };
  }
}
