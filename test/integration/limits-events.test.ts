import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { type Client, client, eventually, startNode } from '../harness/node.js';

/**
 * Every client event draws from its socket's `events` budget before anything else is done with it:
 * unknown events, invalid payloads and packets without an ack included (18,000 unknown events in
 * 3 s used to be answered one by one, unmetered).
 */
let node: FluxoNode;
const BUDGET = 20;
beforeAll(async () => {
  node = await startNode({ RATE_LIMITS: `events=${BUDGET}/60,subscribe=1000/1` });
});
afterAll(() => node?.close());

type Ack = { data?: unknown; error?: { code: string; retryAfterMs?: number } };
const ask = (s: Client, event: string, payload: unknown): Promise<Ack> =>
  new Promise((resolve) => (s.emit as (e: string, p: unknown, ack: (r: Ack) => void) => void)(event, payload, resolve));
const fire = (s: Client, event: string, payload: unknown) => (s.emit as (e: string, p: unknown) => void)(event, payload);

async function refusals(limit: string): Promise<number> {
  const text = (await api<string>(node.url, 'GET', '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith('ws_limit_refusals_total{') && l.includes(`limit="${limit}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('the per-socket events budget', () => {
  it('answers a flood of unknown events with rate_limited once the budget is spent, and counts it', async () => {
    const s = await client(node.url, { token: await token({ sub: 'flood-unknown', tid: 'acme' }) });
    try {
      const acks = await Promise.all(Array.from({ length: BUDGET + 5 }, (_, i) => ask(s, `nope:${i}`, {})));
      expect(acks.slice(0, BUDGET).map((a) => a.error?.code)).toEqual(Array(BUDGET).fill('unknown_event'));
      for (const a of acks.slice(BUDGET)) {
        expect(a.error?.code).toBe('rate_limited');
        expect(a.error?.retryAfterMs).toBeGreaterThan(0);
        expect(a.error?.retryAfterMs).toBeLessThanOrEqual(60_000);
      }
      expect(await refusals('events')).toBeGreaterThanOrEqual(5);
    } finally {
      s.close();
    }
  });

  it('charges events without an ack and invalid payloads too', async () => {
    const s = await client(node.url, { token: await token({ sub: 'flood-noack', tid: 'acme' }) });
    try {
      // Half the budget in events nobody can answer, the rest in payloads that fail validation.
      for (let i = 0; i < BUDGET / 2; i++) fire(s, 'nope', i);
      const invalid = await Promise.all(Array.from({ length: BUDGET / 2 }, () => ask(s, 'subscribe', { room: 42 })));
      expect(invalid.every((a) => a.error?.code === 'validation_failed')).toBe(true);
      // A valid known event now finds the budget spent: refused before its own budget or handler.
      expect(await ask(s, 'subscribe', { room: 'tenant' })).toMatchObject({ error: { code: 'rate_limited' } });
    } finally {
      s.close();
    }
  });

  it('keeps each socket its own budget', async () => {
    const t = await token({ sub: 'two-sockets', tid: 'acme' });
    const [a, b] = [await client(node.url, { token: t }), await client(node.url, { token: t })];
    try {
      for (let i = 0; i < BUDGET; i++) fire(a, 'nope', i);
      expect(await ask(a, 'subscribe', { room: 'tenant' })).toMatchObject({ error: { code: 'rate_limited' } });
      expect(await ask(b, 'subscribe', { room: 'tenant' })).toMatchObject({ data: { room: 'tenant' } });
    } finally {
      a.close();
      b.close();
    }
  });

  it('disconnects a socket that goes on flooding past twice its budget', async () => {
    const s = await client(node.url, { token: await token({ sub: 'flood-on', tid: 'acme' }) });
    const reason = new Promise<string>((resolve) => s.on('disconnect', resolve));
    const told = new Promise<unknown>((resolve) => s.on('server:disconnect', resolve));
    for (let i = 0; i <= 2 * BUDGET; i++) fire(s, 'nope', i);
    const bound = (ms: number) => new Promise((r) => setTimeout(r, ms, 'still connected'));
    expect(await Promise.race([reason, bound(5000)])).toBe('io server disconnect');
    // Told why first (the reason of every server-side disconnect).
    expect(await Promise.race([told, bound(100)])).toMatchObject({ code: 'rate_limited', retryAfterMs: expect.any(Number) });
    await eventually(async () => expect(await refusals('events_flood')).toBe(1));
  });
});
