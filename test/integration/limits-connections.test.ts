import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { type Client, client, eventually, startNode } from '../harness/node.js';

/**
 * Connection caps, per client IP and per user, on one node: Engine.IO sessions are counted from
 * their handshake (before any Socket.IO CONNECT), sockets at CONNECT. The test process talks from
 * 127.0.0.1, a trusted proxy by default, so `X-Forwarded-For` names the client IP of each case.
 */
let node: FluxoNode;
beforeAll(async () => {
  node = await startNode({
    MAX_SESSIONS_PER_IP: '5',
    MAX_SOCKETS_PER_IP: '4',
    MAX_SOCKETS_PER_USER: '3',
    RATE_LIMITS: 'handshake=1000/1,session=12/60',
  });
});
afterAll(() => node?.close());

const polling = () => `${node.url}/socket.io/?EIO=4&transport=polling`;

/** An Engine.IO long-polling handshake (no CONNECT follows): its status, sid and body. */
async function openSession(ip: string): Promise<{ status: number; sid?: string; body: string; retryAfter: string | null }> {
  const res = await fetch(polling(), { headers: { 'x-forwarded-for': ip } });
  const body = await res.text();
  const sid = res.status === 200 ? (JSON.parse(body.slice(1)) as { sid: string }).sid : undefined;
  return { status: res.status, ...(sid ? { sid } : {}), body, retryAfter: res.headers.get('retry-after') };
}

/** Sends the Engine.IO close packet: the server ends the session. */
async function closeSession(ip: string, sid: string): Promise<void> {
  const res = await fetch(`${polling()}&sid=${sid}`, { method: 'POST', body: '1', headers: { 'x-forwarded-for': ip } });
  expect(res.status).toBe(200);
}

/** An Engine.IO session over WebSocket; resolves once open, or with the HTTP status it was refused with. */
function openWebSocket(ip: string): Promise<{ ws?: WebSocket; status?: number }> {
  const ws = new WebSocket(`${node.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`, {
    headers: { 'x-forwarded-for': ip },
  });
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.once('error', () => {});
  });
}

async function refusals(transport: 'http' | 'ws', limit: string): Promise<number> {
  const text = (await api<string>(node.url, 'GET', '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(`${transport}_limit_refusals_total{`) && l.includes(`limit="${limit}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

function refused(p: Promise<Client>): Promise<{ message: string; data?: { code: string; retryAfterMs?: number } }> {
  return p.then(
    (s) => {
      s.close();
      throw new Error('connected, but should have been refused');
    },
    (err) => err,
  );
}

describe('Engine.IO sessions per client IP', () => {
  it('caps live sessions that never send CONNECT, per IP, and frees a slot when one closes', async () => {
    const ip = '203.0.113.10';
    const opened = [];
    for (let i = 0; i < 3; i++) opened.push(await openSession(ip));
    const sockets = [await openWebSocket(ip), await openWebSocket(ip)];
    expect(opened.map((o) => o.status)).toEqual([200, 200, 200]);
    expect(sockets.every((s) => s.ws)).toBe(true);

    // Sixth: refused before any session exists, over either transport, with a typed 429.
    const sixth = await openSession(ip);
    expect(sixth.status).toBe(429);
    expect(JSON.parse(sixth.body)).toMatchObject({ error: { code: 'rate_limited', retryAfterMs: expect.any(Number) } });
    expect(Number(sixth.retryAfter)).toBeGreaterThan(0);
    expect((await openWebSocket(ip)).status).toBe(429);
    expect(await refusals('http', 'sessions_per_ip')).toBeGreaterThanOrEqual(2);

    // Another address is not affected.
    expect((await openSession('203.0.113.11')).status).toBe(200);

    // Closing one session (polling) and one WebSocket frees two slots.
    await closeSession(ip, opened[0]!.sid!);
    sockets[0]!.ws!.close();
    await eventually(async () => {
      const again = await openSession(ip);
      expect(again.status).toBe(200);
      opened.push(again);
    });
    expect((await openWebSocket(ip)).ws).toBeDefined();
    for (const s of sockets) s.ws?.terminate();
  });

  it('limits the rate of Engine.IO handshakes per IP, open or closed', async () => {
    const ip = '203.0.113.20';
    for (let i = 0; i < 12; i++) {
      const s = await openSession(ip);
      expect(s.status, `handshake ${i + 1}`).toBe(200);
      await closeSession(ip, s.sid!);
    }
    const over = await openSession(ip);
    expect(over.status).toBe(429);
    expect(JSON.parse(over.body)).toMatchObject({ error: { code: 'rate_limited' } });
    expect(await refusals('http', 'session')).toBeGreaterThanOrEqual(1);
  });

  it('believes X-Forwarded-For only from a trusted proxy: a direct client cannot spread itself over forged addresses', async () => {
    // 127.0.9.1 is not in TRUST_PROXY: its forged X-Forwarded-For values are ignored.
    const from = (forged: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          `${polling()}`,
          { localAddress: '127.0.9.1', headers: { 'x-forwarded-for': forged }, agent: false },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    const statuses = [];
    for (let i = 1; i <= 6; i++) statuses.push(await from(`198.51.100.${i}`));
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
  });
});

describe('sockets per user and per IP', () => {
  it('refuses the fourth socket of a user with connect_error rate_limited, and takes it once one closes', async () => {
    const t = await token({ sub: 'many-tabs', tid: 'acme' });
    const open: Client[] = [];
    // Each from its own address: only the per-user cap is in play.
    for (let i = 1; i <= 3; i++) open.push(await client(node.url, { token: t, headers: { 'x-forwarded-for': `203.0.113.${30 + i}` } }));
    const err = await refused(client(node.url, { token: t, headers: { 'x-forwarded-for': '203.0.113.34' } }));
    expect(err.data).toMatchObject({ code: 'rate_limited', retryAfterMs: expect.any(Number) });
    expect(await refusals('ws', 'sockets_per_user')).toBeGreaterThanOrEqual(1);
    // Another user is not affected.
    (await client(node.url, { token: await token({ sub: 'one-tab', tid: 'acme' }) })).close();

    open.shift()!.close();
    await eventually(async () => {
      open.push(await client(node.url, { token: t, headers: { 'x-forwarded-for': '203.0.113.35' } }));
    });
    for (const s of open) s.close();
  });

  it('holds the per-user cap under concurrent connects', async () => {
    const t = await token({ sub: 'burst', tid: 'acme' });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => client(node.url, { token: t, headers: { 'x-forwarded-for': `203.0.113.${40 + i}` } })),
    );
    const ok = results.filter((r): r is PromiseFulfilledResult<Client> => r.status === 'fulfilled');
    expect(ok).toHaveLength(3);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { data?: { code: string } }).data?.code).toBe('rate_limited');
    for (const r of ok) r.value.close();
  });

  it('refuses the fifth socket from one IP across users with connect_error rate_limited', async () => {
    const ip = '203.0.113.60';
    const open: Client[] = [];
    for (let i = 0; i < 4; i++)
      open.push(await client(node.url, { token: await token({ sub: `office-${i}`, tid: 'acme' }), headers: { 'x-forwarded-for': ip } }));
    const err = await refused(
      client(node.url, { token: await token({ sub: 'office-4', tid: 'acme' }), headers: { 'x-forwarded-for': ip } }),
    );
    expect(err.data).toMatchObject({ code: 'rate_limited', retryAfterMs: expect.any(Number) });
    expect(await refusals('ws', 'sockets_per_ip')).toBeGreaterThanOrEqual(1);
    open.shift()!.close();
    await eventually(async () => {
      open.push(await client(node.url, { token: await token({ sub: 'office-4', tid: 'acme' }), headers: { 'x-forwarded-for': ip } }));
    });
    for (const s of open) s.close();
  });
});
