import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisInstance, startRedis } from '../../scripts/topology/redis.js';
import { AppError } from '../../server/errors.js';
import { createRateLimits } from '../../server/limits/rate-limits.js';
import { eventually } from '../harness/node.js';

let redis: RedisInstance;
const clients: Redis[] = [];

/** One ioredis client per simulated node, as each node has its own connection. */
function client(): Redis {
  const c = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50, lazyConnect: false });
  c.on('error', () => {}); // expected while the server is stopped
  clients.push(c);
  return c;
}

async function ready(c: Redis): Promise<void> {
  if (c.status !== 'ready') await new Promise<void>((r) => c.once('ready', () => r()));
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await redis?.stop();
});

describe('rate limits shared through Redis', () => {
  it('makes two nodes draw on one budget', async () => {
    const [a, b] = [client(), client()];
    await Promise.all([ready(a), ready(b)]);
    const nodeA = createRateLimits({ spec: 'process:transition=4/10', redis: a, keyPrefix: 'shared-test' });
    const nodeB = createRateLimits({ spec: 'process:transition=4/10', redis: b, keyPrefix: 'shared-test' });
    await nodeA.consume('process:transition', 'acme:u1');
    await nodeB.consume('process:transition', 'acme:u1');
    await nodeA.consume('process:transition', 'acme:u1');
    await nodeB.consume('process:transition', 'acme:u1');
    const err = await nodeA.consume('process:transition', 'acme:u1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).toBody()).toMatchObject({ code: 'rate_limited' });
    expect((err as AppError).extra.retryAfterMs).toBeGreaterThan(9000);
    await expect(nodeB.consume('process:transition', 'acme:u1')).rejects.toMatchObject({ code: 'rate_limited' });
    // Another user still has a full budget.
    await expect(nodeB.consume('process:transition', 'acme:u2')).resolves.toBeUndefined();
    // The count lives in Redis, not in either node.
    expect(await a.keys('shared-test:process:transition*')).toHaveLength(2);
  });

  it('keeps the budgets spent before any work (auth, events, session) on each node, out of Redis', async () => {
    const [a, b] = [client(), client()];
    await Promise.all([ready(a), ready(b)]);
    const nodeA = createRateLimits({ spec: 'auth=2/60,http:read=5/60', redis: a, keyPrefix: 'local-test' });
    const nodeB = createRateLimits({ spec: 'auth=2/60,http:read=5/60', redis: b, keyPrefix: 'local-test' });
    await nodeA.consume('auth', '192.0.2.1');
    await nodeA.consume('auth', '192.0.2.1');
    await expect(nodeA.consume('auth', '192.0.2.1')).rejects.toMatchObject({ code: 'rate_limited' });
    await expect(nodeB.consume('auth', '192.0.2.1')).resolves.toBeUndefined();
    await nodeA.consume('http:read', 'acme:u1');
    expect(await a.keys('local-test:*')).toEqual(['local-test:http:read:acme:u1']);
  });

  it('falls back to the in-memory insurance limiter while Redis is down, then uses Redis again', async () => {
    const c = client();
    await ready(c);
    const limits = createRateLimits({ spec: 'http:write=3/10,process:transition=2/10', redis: c, keyPrefix: 'outage-test' });
    await limits.consume('http:write', 'acme:u1');

    await redis.stop();
    // Down as far as ioredis knows, so the next consume takes the fallback path rather than a half-closed socket.
    await eventually(() => expect(c.status).not.toBe('ready'));

    const started = Date.now();
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) {
      outcomes.push(
        await limits.consume('http:write', 'acme:u1').then(
          () => 'ok',
          (e: unknown) => (e instanceof AppError ? e.code : `raw: ${String(e)}`),
        ),
      );
    }
    // The memory limiter starts from zero and enforces the same 3/10 s budget; nothing hangs or throws raw.
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'rate_limited']);
    // Several budgets at once (one Redis call when Redis answers) fall back the same way, in order.
    const both = ['http:write', 'process:transition'] as const;
    const spentTogether: string[] = [];
    for (let i = 0; i < 3; i++) {
      spentTogether.push(
        await limits.consumeAll(both, 'acme:u2').then(
          () => 'ok',
          (e: unknown) => (e instanceof AppError ? e.code : `raw: ${String(e)}`),
        ),
      );
    }
    expect(spentTogether).toEqual(['ok', 'ok', 'rate_limited']);
    expect(Date.now() - started).toBeLessThan(1000);

    await redis.restart();
    await ready(c);
    await limits.consume('http:write', 'acme:u9');
    expect(await c.keys('outage-test:http:write*')).toEqual(['outage-test:http:write:acme:u9']);
    await limits.consumeAll(both, 'acme:u8');
    expect((await c.keys('outage-test:*:acme:u8')).sort()).toEqual([
      'outage-test:http:write:acme:u8',
      'outage-test:process:transition:acme:u8',
    ]);
  });
});
