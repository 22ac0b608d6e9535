import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { startNode } from '../harness/node.js';

/**
 * Unauthenticated HTTP draws from a per-IP `auth` budget before any token is verified: requests
 * with a missing, forged or expired token, and the sign-in routes under /auth/. A token that
 * verifies gets its point back, so signed-in traffic never spends the budget. The test process
 * talks from 127.0.0.1, a trusted proxy by default: `X-Forwarded-For` names the client IP.
 */
let node: FluxoNode;
const BUDGET = 5;
beforeAll(async () => {
  node = await startNode({ RATE_LIMITS: `auth=${BUDGET}/60,http:read=1000/1` });
});
afterAll(() => node?.close());

const from = (ip: string, extra: Record<string, string> = {}) => ({ 'x-forwarded-for': ip, ...extra });

async function refusals(limit: string): Promise<number> {
  const text = (await api<string>(node.url, 'GET', '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith('http_limit_refusals_total{') && l.includes(`limit="${limit}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('unauthenticated HTTP per IP', () => {
  it('answers 429 after the budget of bad-token requests, before verifying even a good token', async () => {
    const ip = '192.0.2.10';
    const forged = await token({ sub: 'x', tid: 'acme', secret: 'another-secret-that-is-long-enough-xx' });
    const statuses: number[] = [];
    for (let i = 0; i < BUDGET; i++) {
      const headers = from(ip, i % 2 ? { authorization: `Bearer ${forged}` } : {});
      statuses.push((await api(node.url, 'GET', '/api/workflows', { headers })).status);
    }
    expect(statuses).toEqual(Array(BUDGET).fill(401));
    const over = await api(node.url, 'GET', '/api/workflows', { headers: from(ip, { authorization: 'Bearer not.a.jwt' }) });
    expect(over.status).toBe(429);
    expect(over.body).toMatchObject({ error: { code: 'rate_limited', retryAfterMs: expect.any(Number) } });
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    // Refused before verification: a valid token from the same address waits too.
    const good = await token({ sub: 'same-ip', tid: 'acme', role: 'viewer' });
    expect((await api(node.url, 'GET', '/api/workflows', { headers: from(ip, { authorization: `Bearer ${good}` }) })).status).toBe(429);
    // Another address still gets its 401.
    expect((await api(node.url, 'GET', '/api/workflows', { headers: from('192.0.2.11') })).status).toBe(401);
    expect(await refusals('auth')).toBeGreaterThanOrEqual(2);
  });

  it('gives a valid token its point back: signed-in traffic never spends the budget', async () => {
    const ip = '192.0.2.20';
    const good = await token({ sub: 'reader', tid: 'acme', role: 'viewer' });
    for (let i = 0; i < 4 * BUDGET; i++) {
      expect((await api(node.url, 'GET', '/api/workflows', { headers: from(ip, { authorization: `Bearer ${good}` }) })).status).toBe(200);
    }
  });

  it('counts sign-in requests (/auth/session, /auth/dev-login) per IP', async () => {
    const ip = '192.0.2.30';
    const good = await token({ sub: 'signin', tid: 'acme' });
    const statuses: number[] = [];
    for (let i = 0; i < BUDGET; i++) {
      const res =
        i % 2
          ? await api(node.url, 'POST', '/auth/dev-login', { headers: from(ip), body: { userId: 'ada' } })
          : await api(node.url, 'POST', '/auth/session', { headers: from(ip), body: { token: good } });
      statuses.push(res.status);
    }
    // Whatever each answered (dev sign-in may be off), none was refused by the limit.
    expect(statuses).not.toContain(429);
    expect((await api(node.url, 'POST', '/auth/session', { headers: from(ip), body: { token: good } })).status).toBe(429);
    expect((await api(node.url, 'POST', '/auth/dev-login', { headers: from(ip), body: { userId: 'ada' } })).status).toBe(429);
  });
});
