import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoard } from '../../scripts/topology/fixtures.js';
import { type Frozen, freezeRedis } from '../../scripts/topology/freeze.js';
import { type RedisInstance, startRedis } from '../../scripts/topology/redis.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { type Client, client, eventually, request, startNode } from '../harness/node.js';

/** REDIS_COMMAND_TIMEOUT_MS of the node: the longest a request may wait for a silent Redis. */
const COMMAND_TIMEOUT_MS = 300;
const PROMPT_MS = COMMAND_TIMEOUT_MS + 1000;

async function timed<T>(what: string, p: Promise<T>, limitMs = 4000): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${limitMs} ms`)), limitMs);
  });
  try {
    const value = await Promise.race([p, hung]);
    return { value, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

async function status(url: string, method: string, path: string, bearer?: string, body?: unknown): Promise<number> {
  const res = await fetch(url + path, {
    method,
    headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(4000),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('a node with a frozen Redis (connected, silent)', () => {
  let redis: RedisInstance;
  let node: FluxoNode;
  let frozen: Frozen | undefined;
  const sockets: Client[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    node = await startNode({
      REDIS_URL: redis.url,
      REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS),
      RATE_LIMITS: 'http:write=3/60,http:read=1000/1,handshake=1000/1,subscribe=1000/1',
    });
  });
  afterAll(async () => {
    frozen?.thaw();
    for (const s of sockets) s.close();
    await node?.close();
    await redis?.stop();
  });

  it('keeps rate limiting in memory, promptly, is not ready meanwhile, and ready again after', async () => {
    const setup = await token({ sub: 'setup', tid: 'acme', role: 'admin' });
    await createBoard(node.url, setup);
    expect(await status(node.url, 'GET', '/ready')).toBe(200);
    const writer = await token({ sub: 'writer', tid: 'acme', role: 'admin' });

    frozen = await freezeRedis(redis.url);
    // HTTP: the write budget (3 per minute) is counted by the in-memory insurance limiter.
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { value, ms } = await timed(
        `POST /api/workflows #${i}`,
        status(node.url, 'POST', '/api/workflows', writer, { name: `W${i}`, stages: ['a'], transitions: {} }),
      );
      expect(ms).toBeLessThan(PROMPT_MS);
      codes.push(value);
    }
    expect(codes).toEqual([201, 201, 201, 429, 429]);

    // Socket.IO: the handshake and `subscribe` are rate limited (and presence lives in Redis).
    const s = (await timed('socket handshake', client(node.url, { token: writer }))).value;
    sockets.push(s);
    const sub = await timed('subscribe', request(s, 'subscribe', { room: 'tenant' }));
    expect(sub.ms).toBeLessThan(PROMPT_MS);
    expect(sub.value).toHaveProperty('data');

    await eventually(async () => expect(await status(node.url, 'GET', '/ready')).toBe(503), 5000, 100);
    // Once the probe has seen Redis silent, limits are counted in memory without waiting at all.
    const fast = await timed(
      'POST after detection',
      status(node.url, 'POST', '/api/workflows', writer, { name: 'late', stages: ['a'], transitions: {} }),
    );
    expect(fast.value).toBe(429);
    expect(fast.ms).toBeLessThan(200);

    frozen.thaw();
    await eventually(async () => expect(await status(node.url, 'GET', '/ready')).toBe(200), 8000, 100);
    // Redis counts again. (Not for `writer`: the commands that timed out were still in the socket
    // and Redis ran them on thaw — its count there is past the budget.)
    const later = await token({ sub: 'later', tid: 'acme', role: 'admin' });
    expect(await status(node.url, 'POST', '/api/workflows', later, { name: 'after', stages: ['a'], transitions: {} })).toBe(201);
    const direct = new Redis(redis.url);
    try {
      expect(await direct.exists('fluxo:rl:http:write:acme:later')).toBe(1);
    } finally {
      direct.disconnect();
    }
  });
});
