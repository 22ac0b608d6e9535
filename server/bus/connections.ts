import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';

/**
 * One connection per job, so that one slow job cannot starve another (a long presence scan must
 * not delay fan-out, a burst of rate-limit checks must not delay a subscription).
 */
export const ROLES = ['adapter-pub', 'adapter-sub', 'limiter', 'state', 'state-sub'] as const;
export type RedisRole = (typeof ROLES)[number];
export type RedisClient = Redis | Cluster;

export type RedisTarget = { url: string } | { cluster: { host: string; port: number }[] };

/** Whether a role's connection queues commands while Redis is away. */
function offlineQueue(role: RedisRole): boolean {
  // adapter-pub: a publish issued during a blink is sent on reconnect (late beats lost; clients drop
  //   duplicates by id). Subscribers must queue their (re)subscribe commands.
  // limiter: rate-limiter-flexible's rejectIfRedisNotReady falls back to memory instead.
  // state: presence calls fail fast and fall back to local knowledge; re-asserted on recovery.
  return role === 'adapter-pub' || role === 'adapter-sub' || role === 'state-sub';
}

/** Redis' reply deadline when none is configured (REDIS_COMMAND_TIMEOUT_MS). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 500;

/**
 * `commandTimeoutMs` (ioredis `commandTimeout`) bounds every command of every role: a frozen Redis
 * (connected but silent) would otherwise stall each caller forever, since the connection stays
 * "ready". On subscriber connections it bounds the (un)subscribe commands only, never the wait for
 * messages. A command that timed out is not withdrawn: one in the offline queue (adapter-pub,
 * subscribers) is still sent on reconnect, as before. Commands sent without awaiting them (the
 * Socket.IO adapter's publishes, ioredis' resubscribe after a reconnect) can now reject: bus.ts
 * gives them a handler. Fluxo sends no blocking command (BLPOP, XREAD BLOCK…): the timeout would
 * cut those too — run such a command on a connection of its own without it.
 */
export function connect(target: RedisTarget, role: RedisRole, commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): RedisClient {
  const common: RedisOptions = {
    connectionName: `fluxo-${role}`,
    commandTimeout: commandTimeoutMs,
    enableOfflineQueue: offlineQueue(role),
    // Keep retrying forever, at most every 2 s: Redis coming back must heal the node by itself.
    retryStrategy: (times) => Math.min(times * 100, 2000),
    // null: queued commands wait for the reconnect instead of failing after 20 attempts.
    maxRetriesPerRequest: offlineQueue(role) ? null : 1,
    lazyConnect: false,
    // Under load many requests (limiter) and events (adapter-pub: one PUBLISH per room of each) issue
    // commands in the same tick; one socket write for all of them instead of one each — on a busy
    // node the write syscalls were a tenth of its CPU (write-path bench profile).
    enableAutoPipelining: role === 'adapter-pub' || role === 'limiter',
  };
  if ('url' in target) return new Redis(target.url, common);
  const options: ClusterOptions = {
    redisOptions: common,
    enableOfflineQueue: offlineQueue(role),
    clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
    // SSUBSCRIBE must be sent to the shard owning the channel: ioredis keeps one subscriber per shard.
    ...(role === 'adapter-sub' ? { shardedSubscribers: true } : {}),
  };
  return new Cluster(target.cluster, options);
}

/** Resolves once the client is ready, or rejects after `timeoutMs` naming the role. */
export function whenReady(client: RedisClient, role: RedisRole, timeoutMs = 10_000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`redis (${role}) not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}
