import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { type RedisInstance, startRedis } from '../../scripts/topology/redis.js';
import { AppError } from '../../server/errors.js';
import { createRateLimits, type RateLimits } from '../../server/limits/rate-limits.js';

// One behavioural suite for the rate-limit stores: a node alone counts in memory, nodes of a cluster
// in Redis; a budget must mean the same in both. Redis outages and cross-node sharing are in
// limits-redis.test.ts.

let redis: RedisInstance | undefined;
const connections: Redis[] = [];

const variants = [
  { name: 'memory', open: async (spec: string): Promise<RateLimits> => createRateLimits({ spec }) },
  {
    name: 'redis',
    open: async (spec: string): Promise<RateLimits> => {
      redis ??= await startRedis();
      const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      connections.push(connection);
      if (connection.status !== 'ready') await new Promise<void>((r) => connection.once('ready', () => r()));
      return createRateLimits({ spec, redis: connection, keyPrefix: `contract-${randomUUID()}` });
    },
  },
] as const;

afterAll(async () => {
  for (const c of connections) c.disconnect();
  await redis?.stop();
});

/** The refusal of `p`, or null if it was let through. */
async function refusal(p: Promise<void>): Promise<AppError | null> {
  return p.then(
    () => null,
    (e: unknown) => {
      if (!(e instanceof AppError)) throw e;
      return e;
    },
  );
}

describe.each(variants)('rate limits on $name', ({ name, open }) => {
  // A Redis limiter falls back to memory whenever a call fails: without this the suite could test memory twice.
  it.runIf(name === 'redis')(
    'counts in Redis, not in its in-memory fallback',
    async () => {
      const limits = await open('process:transition=3/10');
      const before = await connections.at(-1)!.keys('contract-*');
      await limits.consume('process:transition', 'acme:u1');
      expect((await connections.at(-1)!.keys('contract-*')).length).toBe(before.length + 1);
    },
    30_000,
  );

  it('lets the budget through, refuses the next with rate_limited and a retryAfterMs within the window', async () => {
    const limits = await open('process:transition=3/10');
    for (let i = 0; i < 3; i++) expect(await refusal(limits.consume('process:transition', 'acme:u1'))).toBeNull();
    const refused = await refusal(limits.consume('process:transition', 'acme:u1'));
    expect(refused?.code).toBe('rate_limited');
    expect(refused?.extra.retryAfterMs).toBeGreaterThan(0);
    expect(refused?.extra.retryAfterMs).toBeLessThanOrEqual(10_000);
  });

  it('counts each subject and each event on its own budget, and points by weight', async () => {
    const limits = await open('http:write=4/10,http:read=1/10');
    await limits.consume('http:write', 'acme:u1', 4);
    expect((await refusal(limits.consume('http:write', 'acme:u1')))?.code).toBe('rate_limited');
    expect(await refusal(limits.consume('http:write', 'acme:u2', 4))).toBeNull();
    expect(await refusal(limits.consume('http:read', 'acme:u1'))).toBeNull();
    expect((await refusal(limits.consume('http:read', 'acme:u1')))?.code).toBe('rate_limited');
  });

  it('limits handshakes per IP', async () => {
    const limits = await open('handshake=2/10');
    await limits.consumeHandshake('198.51.100.1');
    await limits.consumeHandshake('198.51.100.1');
    expect(await refusal(limits.consumeHandshake('198.51.100.2'))).toBeNull();
    expect((await refusal(limits.consumeHandshake('198.51.100.1')))?.code).toBe('rate_limited');
  });

  it('gives back refunded points', async () => {
    const limits = await open('auth=2/60');
    await limits.consume('auth', '192.0.2.1');
    await limits.consume('auth', '192.0.2.1');
    await limits.refund('auth', '192.0.2.1');
    expect(await refusal(limits.consume('auth', '192.0.2.1'))).toBeNull();
    expect((await refusal(limits.consume('auth', '192.0.2.1')))?.code).toBe('rate_limited');
  });

  it('spends several budgets at once as one after another would: the first refusal wins, later budgets are left as they were', async () => {
    const limits = await open('http:write=2/10,process:transition=1/10');
    const refusedBy: string[] = [];
    expect(await refusal(limits.consumeAll(['http:write', 'process:transition'], 'acme:u1', (e) => refusedBy.push(e)))).toBeNull();
    // process:transition is spent, http:write has one point left: refused by the second, the first still spent.
    const second = await refusal(limits.consumeAll(['http:write', 'process:transition'], 'acme:u1', (e) => refusedBy.push(e)));
    expect(second?.code).toBe('rate_limited');
    expect(second?.extra.retryAfterMs).toBeLessThanOrEqual(10_000);
    expect((await refusal(limits.consume('http:write', 'acme:u1')))?.code).toBe('rate_limited');
    // Refused by the first: the second's point is given back (u2's process:transition stays unspent).
    await limits.consume('http:write', 'acme:u2', 2);
    expect((await refusal(limits.consumeAll(['http:write', 'process:transition'], 'acme:u2', (e) => refusedBy.push(e))))?.code).toBe(
      'rate_limited',
    );
    expect(await refusal(limits.consume('process:transition', 'acme:u2'))).toBeNull();
    expect(refusedBy).toEqual(['process:transition', 'http:write']);
  });

  it('opens the budget again once retryAfterMs has passed', async () => {
    const limits = await open('http:read=1/1');
    await limits.consume('http:read', 'acme:u1');
    const refused = await refusal(limits.consume('http:read', 'acme:u1'));
    expect(refused?.code).toBe('rate_limited');
    // The wait is the one the refusal asked for, not a guess.
    await new Promise((r) => setTimeout(r, (refused?.extra.retryAfterMs ?? 0) + 20));
    expect(await refusal(limits.consume('http:read', 'acme:u1'))).toBeNull();
  });
});
