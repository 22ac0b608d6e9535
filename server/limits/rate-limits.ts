import type { Cluster, Redis } from 'ioredis';
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../errors.js';
import { type LimitEvent, NODE_LOCAL_LIMITS, resolveLimits } from './parse.js';

export interface RateLimits {
  /**
   * Spends `points` of `subject`'s budget for `event`.
   * Throws AppError('rate_limited', …, { retryAfterMs }) when the budget is spent.
   * @param subject who pays, e.g. `${tenant}:${userId}`
   */
  consume(event: LimitEvent, subject: string, points?: number): Promise<void>;
  /**
   * Spends one point of `subject`'s budget for each of `events`, as consuming them one after another
   * in that order would: refused with the first budget (in order) that is spent, the later ones
   * left as they were. The calls are issued together, so with Redis ioredis' auto-pipelining sends
   * them in one write and they cost one round trip instead of one each (an HTTP transition spends
   * `http:write` and `process:transition`). `onRefused` hears which event refused.
   */
  consumeAll(events: readonly LimitEvent[], subject: string, onRefused?: (event: LimitEvent) => void): Promise<void>;
  /** `consume('handshake', ip)`. */
  consumeHandshake(ip: string): Promise<void>;
  /** Gives back points consumed before the work turned out not to count (the `auth` budget of a token that verified). Never throws. */
  refund(event: LimitEvent, subject: string, points?: number): Promise<void>;
}

export interface RateLimitsOptions {
  /** RATE_LIMITS: overrides as `event=points/seconds,…`. */
  spec: string;
  /** Shared budgets across nodes. Unset: each node counts alone, in memory. */
  redis?: Redis | Cluster;
  /** @default 'fluxo:rl' */
  keyPrefix?: string;
  /**
   * False while Redis is known not to answer (the bus' PING probe): budgets are then counted in
   * memory at once, instead of each request first waiting for its command to time out.
   */
  redisAnswering?: () => boolean;
  /**
   * Called when even the in-memory fallback fails (not expected); the request is then let
   * through rather than failing on a limiter fault.
   */
  onError?: (err: unknown, event: LimitEvent) => void;
}

/**
 * One limiter per event. With Redis every node draws on the same budget (except NODE_LOCAL_LIMITS); when Redis is down, not
 * ready or silent, each node falls back to its own in-memory limiter with the same budget (so the
 * cluster-wide allowance is then up to N times higher for N nodes, but nothing stalls).
 *
 * rate-limiter-flexible hands a call to the insurance (memory) limiter whenever the Redis call
 * rejects — not connected (`rejectIfRedisNotReady`) or not answered in time (the connection's
 * command timeout, connections.ts). A frozen Redis keeps its connection "ready", so without that
 * timeout every call would hang; with it the first calls wait for the timeout, and once the bus'
 * probe has seen Redis silent (`redisAnswering`) calls go to memory at once.
 */
export function createRateLimits(opts: RateLimitsOptions): RateLimits {
  const limits = resolveLimits(opts.spec);
  const prefix = opts.keyPrefix ?? 'fluxo:rl';
  const limiters = new Map<LimitEvent, RateLimiterAbstract>();
  const memories = new Map<LimitEvent, RateLimiterAbstract>();

  for (const [event, { points, durationS }] of Object.entries(limits) as [LimitEvent, { points: number; durationS: number }][]) {
    const common = { points, duration: durationS, keyPrefix: `${prefix}:${event}` };
    const memory = new RateLimiterMemory(common);
    memories.set(event, memory);
    limiters.set(
      event,
      opts.redis && !NODE_LOCAL_LIMITS.has(event)
        ? new RateLimiterRedis({
            ...common,
            storeClient: opts.redis,
            // Without this, ioredis queues commands while reconnecting and every request waits.
            rejectIfRedisNotReady: true,
            insuranceLimiter: memory,
          })
        : memory,
    );
  }

  /** Spends the points: 'spent', the refusal, or 'failed' (counted nowhere, let through). */
  async function spend(event: LimitEvent, subject: string, points: number, inMemory = false): Promise<'spent' | 'failed' | AppError> {
    const silent = inMemory || (opts.redis !== undefined && opts.redisAnswering?.() === false);
    const limiter = silent ? memories.get(event) : limiters.get(event);
    if (!limiter) throw new Error(`unknown rate-limit event: ${event}`);
    try {
      await limiter.consume(subject, points);
      return 'spent';
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        return new AppError('rate_limited', undefined, { retryAfterMs: Math.max(1, Math.ceil(err.msBeforeNext)) });
      }
      opts.onError?.(err, event);
      return 'failed';
    }
  }

  async function consume(event: LimitEvent, subject: string, points = 1): Promise<void> {
    const spent = await spend(event, subject, points);
    if (spent instanceof AppError) throw spent;
  }

  const inOrder = opts.redis && !opts.redis.isCluster ? spendInOrder(opts.redis) : null;

  // Not rate-limiter-flexible's RateLimiterUnion: it spends every budget even when an earlier one
  // refuses, and its refusal does not say which budget's wait applies.
  async function consumeAll(events: readonly LimitEvent[], subject: string, onRefused?: (event: LimitEvent) => void): Promise<void> {
    let inMemory = false;
    if (inOrder && events.length > 1 && opts.redisAnswering?.() !== false && events.every((e) => !NODE_LOCAL_LIMITS.has(e))) {
      const refused = await inOrder(
        // The library's own keys, so that one call and its single consumes count the same budget.
        events.map((e) => limiters.get(e)!.getKey(subject)),
        events.map((e) => limits[e]),
      ).catch(() => undefined);
      if (refused === null) return;
      if (refused) {
        onRefused?.(events[refused.index]!);
        throw new AppError('rate_limited', undefined, { retryAfterMs: Math.max(1, Math.ceil(refused.msBeforeNext)) });
      }
      // Redis did not answer: counted in memory, as rate-limiter-flexible's insurance limiter would.
      inMemory = true;
    }
    const spent = await Promise.all(events.map((event) => spend(event, subject, 1, inMemory)));
    const first = spent.findIndex((s) => s instanceof AppError);
    if (first === -1) return;
    // A refused consume counts its point too: give back every later event's, as if never asked.
    await Promise.all(events.map((event, i) => (i > first && spent[i] !== 'failed' ? refund(event, subject) : undefined)));
    onRefused?.(events[first]!);
    throw spent[first];
  }

  async function refund(event: LimitEvent, subject: string, points = 1): Promise<void> {
    const silent = opts.redis !== undefined && opts.redisAnswering?.() === false;
    const limiter = silent ? memories.get(event) : limiters.get(event);
    try {
      await limiter?.reward(subject, points);
    } catch (err) {
      opts.onError?.(err, event);
    }
  }

  return {
    consume,
    consumeAll,
    consumeHandshake: (ip) => consume('handshake', ip),
    refund,
  };
}

/**
 * One point of each budget, in order, in ONE Redis call — what consuming them one after another with
 * rate-limiter-flexible does (its keys, from `getKey`, and per key its own SET NX / INCRBY /
 * PTTL), stopping at the first budget spent: that one keeps its point (the library counts a refused
 * consume too), the later ones are not touched, so nothing is given back. An HTTP transition spends
 * two budgets; this halves its limiter calls, the largest piece of a transition's CPU left in the
 * node (bench/NOTES.md, round 4). All keys of one call must live on one server: not on a Redis
 * Cluster, where the budgets' keys are in different slots (the caller spends them one by one there).
 */
const SPEND_IN_ORDER = `
for i = 1, #KEYS do
  local duration = tonumber(ARGV[2 * i])
  redis.call('set', KEYS[i], 0, 'EX', duration, 'NX')
  local consumed = redis.call('incrby', KEYS[i], 1)
  local ttl = redis.call('pttl', KEYS[i])
  if ttl == -1 then
    redis.call('expire', KEYS[i], duration)
    ttl = 1000 * duration
  end
  if consumed > tonumber(ARGV[2 * i - 1]) then return {i, ttl} end
end
return {0, 0}`;

type SpendInOrder = (
  keys: string[],
  budgets: { points: number; durationS: number }[],
) => Promise<{ index: number; msBeforeNext: number } | null>;

function spendInOrder(redis: Redis | Cluster): SpendInOrder {
  redis.defineCommand('fluxoSpendInOrder', { lua: SPEND_IN_ORDER });
  const call = (redis as unknown as { fluxoSpendInOrder(...args: (string | number)[]): Promise<[number, number]> }).fluxoSpendInOrder.bind(
    redis,
  );
  return async (keys, budgets) => {
    // As rate-limiter-flexible's `rejectIfRedisNotReady`: while reconnecting, ioredis would queue the call.
    if (redis.status !== 'ready') throw new Error('redis not ready');
    const [index, ttl] = await call(keys.length, ...keys, ...budgets.flatMap((b) => [b.points, b.durationS]));
    return index === 0 ? null : { index: index - 1, msBeforeNext: ttl };
  };
}

/**
 * The same budgets, with every refusal of a `consume` reported to `onRefused` first: one view per
 * transport (HTTP, Socket.IO), so that a budget both spend (`process:transition`) is counted in the
 * metric of the transport that was refused.
 */
export function reportingRefusals(limits: RateLimits, onRefused: (event: LimitEvent) => void): RateLimits {
  const consume = async (event: LimitEvent, subject: string, points?: number) => {
    try {
      await limits.consume(event, subject, points);
    } catch (err) {
      if (err instanceof AppError && err.code === 'rate_limited') onRefused(event);
      throw err;
    }
  };
  return {
    consume,
    consumeAll: (events, subject, alsoRefused) =>
      limits.consumeAll(events, subject, (event) => {
        onRefused(event);
        alsoRefused?.(event);
      }),
    consumeHandshake: (ip) => consume('handshake', ip),
    refund: (event, subject, points) => limits.refund(event, subject, points),
  };
}
