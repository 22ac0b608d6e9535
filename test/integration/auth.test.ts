import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FluxoNode } from '../../server/app.js';
import { api, client, helloOf, request, startNode, token } from '../harness/node.js';

let node: FluxoNode;
beforeAll(async () => {
  node = await startNode({ ALLOWED_ORIGINS: 'https://app.example.com', JWT_CLOCK_TOLERANCE_S: '0' });
});
afterAll(() => node?.shutdown());

function connectError(p: Promise<unknown>): Promise<{ message: string; data?: { code: string } }> {
  return p.then(
    () => {
      throw new Error('connected, but should have been refused');
    },
    (err) => err,
  );
}

describe('socket authentication', () => {
  it('refuses a handshake without a token, with a forged token and with an expired token', async () => {
    expect((await connectError(client(node.url))).data?.code).toBe('unauthorized');
    const forged = await token({ sub: 'u', tid: 'acme', secret: 'another-secret-that-is-long-enough-xx' });
    expect((await connectError(client(node.url, { token: forged }))).data?.code).toBe('token_invalid');
    expect((await connectError(client(node.url, { token: 'not.a.jwt' }))).data?.code).toBe('token_invalid');
    const expired = await token({ sub: 'u', tid: 'acme', ttlS: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    expect((await connectError(client(node.url, { token: expired }))).data?.code).toBe('token_expired');
  });

  it('accepts the session cookie only from an allowed Origin', async () => {
    const t = await token({ sub: 'c1', tid: 'acme' });
    const cookie = `fluxo_session=${t}`;
    // A cross-site page: refused in allowRequest, before any Socket.IO packet.
    await expect(client(node.url, { headers: { cookie, origin: 'https://evil.example.net' } })).rejects.toThrow();
    // No Origin: the cookie is never used.
    expect((await connectError(client(node.url, { headers: { cookie } }))).data?.code).toBe('origin_not_allowed');
    await expect(client(node.url, { headers: { cookie, origin: 'null' } })).rejects.toThrow();
    const ok = await client(node.url, { headers: { cookie, origin: 'https://app.example.com' } });
    ok.close();
  });

  it('warns and disconnects at exp, unless the client refreshed first', async () => {
    const short = await token({ sub: 'exp', tid: 'acme', ttlS: 2 });
    const a = await client(node.url, { token: short });
    const expired = new Promise<void>((resolve) => a.on('auth:expired', () => resolve()));
    const closed = new Promise<string>((resolve) => a.on('disconnect', (reason) => resolve(reason)));
    await expired;
    expect(await closed).toBe('io server disconnect');

    const b = await client(node.url, { token: await token({ sub: 'exp', tid: 'acme', ttlS: 2 }) });
    try {
      const refreshed = await request(b, 'auth:refresh', { token: await token({ sub: 'exp', tid: 'acme', ttlS: 60 }) });
      expect(refreshed).toMatchObject({ data: { exp: expect.any(Number) } });
      expect(await request(b, 'auth:refresh', { token: await token({ sub: 'other', tid: 'acme' }) })).toMatchObject({
        error: { code: 'forbidden' },
      });
      await new Promise((r) => setTimeout(r, 2500));
      expect(b.connected).toBe(true);
    } finally {
      b.close();
    }
  });

  it('logout clears the cookie, revokes the token and disconnects its live sockets', async () => {
    const t = await token({ sub: 'leaver', tid: 'acme' });
    const session = await api(node.url, 'POST', '/auth/session', { body: { token: t } });
    expect(session.status).toBe(200);
    const setCookie = session.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/fluxo_session=/);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);

    const live = await client(node.url, { token: t });
    const gone = new Promise<string>((resolve) => live.on('disconnect', (r) => resolve(r)));
    const out = await api(node.url, 'POST', '/auth/logout', { token: t });
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie')).toMatch(/Max-Age=0/i);
    expect(await gone).toBe('io server disconnect');
    expect((await connectError(client(node.url, { token: t }))).data?.code).toBe('token_revoked');
    const me = await api<{ error: { code: string } }>(node.url, 'GET', '/api/me', { token: t });
    expect(me.status).toBe(401);
    expect(me.body.error.code).toBe('token_revoked');
  });

  it('refuses a cookie-authenticated cross-site HTTP write', async () => {
    const t = await token({ sub: 'w', tid: 'acme', role: 'admin' });
    const res = await api<{ error: { code: string } }>(node.url, 'POST', '/api/workflows', {
      headers: { cookie: `fluxo_session=${t}`, origin: 'https://evil.example.net', 'sec-fetch-site': 'cross-site' },
      body: { name: 'x', stages: ['a'], transitions: {} },
    });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('origin_not_allowed');
    const ok = await api(node.url, 'POST', '/api/workflows', {
      headers: { cookie: `fluxo_session=${t}`, origin: 'https://app.example.com' },
      body: { name: 'x', stages: ['a'], transitions: {} },
    });
    expect(ok.status).toBe(201);
  });

  it('keeps a socket whose token is valid connected and says hello with the node id', async () => {
    const s = await client(node.url, { token: await token({ sub: 'h', tid: 'acme', role: 'viewer' }) });
    try {
      const hello = await helloOf(s);
      expect(hello).toMatchObject({ nodeId: node.config.nodeId, userId: 'h', tenant: 'acme', role: 'viewer' });
    } finally {
      s.close();
    }
  });
});
