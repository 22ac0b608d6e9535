import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { io as ioClient } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { TEST_SECRET, token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { ServerDisconnect } from '../../shared/protocol.js';
import { type ConnectionStatus, connect as sdkConnect } from '../../shared/sdk/index.js';
import { type Client, client, eventually, helloOf, request, startNode } from '../harness/node.js';

let node: FluxoNode;
beforeAll(async () => {
  node = await startNode({ ALLOWED_ORIGINS: 'https://app.example.com', JWT_CLOCK_TOLERANCE_S: '0' });
});
afterAll(() => node?.close());

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
    // Expired a minute ago (this node allows no clock skew), rather than waiting for a fresh one to expire.
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ tid: 'acme', role: 'editor' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u')
      .setIssuedAt(now - 120)
      .setExpirationTime(now - 60)
      .sign(new TextEncoder().encode(TEST_SECRET));
    expect((await connectError(client(node.url, { token: expired }))).data?.code).toBe('token_expired');
  });

  it('accepts the session cookie only from an allowed Origin', async () => {
    const t = await token({ sub: 'c1', tid: 'acme' });
    const cookie = `fluxo_session=${t}`;
    // A cross-site page: a typed connect_error, over WebSocket and long-polling alike; nothing else.
    for (const origin of ['https://evil.example.net', 'null']) {
      for (const transports of [['websocket'], ['polling']] as ('websocket' | 'polling')[][]) {
        const refused = await connectError(client(node.url, { headers: { cookie, origin }, transports }));
        expect(refused.data?.code, `${origin} ${transports}`).toBe('origin_not_allowed');
      }
    }
    // No Origin: the cookie is never used.
    expect((await connectError(client(node.url, { headers: { cookie } }))).data?.code).toBe('origin_not_allowed');
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

    // b refreshes; the control, minted after b's first token (so expiring no earlier) does not. Once the
    // control is dropped, b's original expiry has passed on the server too.
    const b = await client(node.url, { token: await token({ sub: 'exp', tid: 'acme', ttlS: 3 }) });
    const control = await client(node.url, { token: await token({ sub: 'exp', tid: 'acme', ttlS: 3 }) });
    try {
      const seenB = watch(b);
      const controlGone = new Promise<string>((resolve) => control.on('disconnect', (reason) => resolve(reason)));
      const refreshed = await request(b, 'auth:refresh', { token: await token({ sub: 'exp', tid: 'acme', ttlS: 60 }) });
      expect(refreshed).toMatchObject({ data: { exp: expect.any(Number) } });
      expect(await request(b, 'auth:refresh', { token: await token({ sub: 'other', tid: 'acme' }) })).toMatchObject({
        error: { code: 'forbidden' },
      });
      expect(await controlGone).toBe('io server disconnect');
      // Barrier on b's own socket: a disconnect sent before this ack would have arrived first.
      expect(await request(b, 'subscribe', { room: 'tenant' })).toMatchObject({ data: { room: 'tenant' } });
      expect(seenB).toEqual([]);
      expect(b.connected).toBe(true);
    } finally {
      b.close();
      control.close();
    }
  });

  it('warns at once when a connect or a refresh brings a token with less than a minute left', async () => {
    // Listening before the connect: the warning follows it at once.
    const s: Client = ioClient(node.url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      autoConnect: false,
      auth: { token: await token({ sub: 'late', tid: 'acme', ttlS: 40 }) },
    });
    const warnings: { exp: number; inMs: number }[] = [];
    s.on('auth:expiring', (info) => warnings.push(info));
    s.connect();
    try {
      await eventually(() => expect(warnings).toHaveLength(1));
      expect(warnings[0]!.inMs).toBeGreaterThan(0);
      expect(warnings[0]!.inMs).toBeLessThanOrEqual(40_000);
      const refreshed = await request(s, 'auth:refresh', { token: await token({ sub: 'late', tid: 'acme', ttlS: 45 }) });
      if (!('data' in refreshed)) throw new Error(JSON.stringify(refreshed));
      await eventually(() => expect(warnings).toHaveLength(2));
      expect(warnings[1]!.exp).toBe(refreshed.data.exp);
    } finally {
      s.close();
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

/** What a socket was told and when it went, in arrival order. */
function watch(s: Client): string[] {
  const seen: string[] = [];
  s.on('auth:expired', () => seen.push('auth:expired'));
  s.on('server:reconnect', () => seen.push('server:reconnect'));
  s.on('server:disconnect', (info: ServerDisconnect) => seen.push(`server:disconnect ${info.code}`));
  s.on('disconnect', (reason) => seen.push(`disconnect ${reason}`));
  return seen;
}

describe('server-side disconnects say why first', () => {
  it('logout: token_revoked, then the disconnect', async () => {
    const t = await token({ sub: 'bye', tid: 'acme' });
    const s = await client(node.url, { token: t });
    const seen = watch(s);
    expect((await api(node.url, 'POST', '/auth/logout', { token: t })).status).toBe(200);
    await eventually(() => expect(seen).toEqual(['server:disconnect token_revoked', 'disconnect io server disconnect']));
  });

  it('expiry: auth:expired, token_expired, then the disconnect', async () => {
    // exp is whole seconds: a 1 s token can have expired before a slow handshake ends (seen on a loaded
    // machine); 3 s leaves the connect at least 2 s, and the wait covers the token's life and more.
    const s = await client(node.url, { token: await token({ sub: 'exp2', tid: 'acme', ttlS: 3 }) });
    const seen = watch(s);
    await eventually(
      () => expect(seen).toEqual(['auth:expired', 'server:disconnect token_expired', 'disconnect io server disconnect']),
      15_000,
    );
  });

  it('drain: server:reconnect, not_ready, then the disconnect', async () => {
    const draining = await startNode();
    const s = await client(draining.url, { token: await token({ sub: 'd', tid: 'acme' }) });
    const seen = watch(s);
    await draining.close();
    await eventually(() => expect(seen).toEqual(['server:reconnect', 'server:disconnect not_ready', 'disconnect io server disconnect']));
  });

  it('the SDK surfaces the reason and does not reconnect a revoked token', async () => {
    const t = await token({ sub: 'sdk-bye', tid: 'acme' });
    const c = sdkConnect({ url: node.url, token: t, transports: ['websocket'], backoff: { initialMs: 50, maxMs: 200 } });
    try {
      await c.whenConnected();
      const told = new Promise<{ code: string; retryable: boolean }>((resolve) => c.on('disconnect', resolve));
      const states: ConnectionStatus[] = [];
      c.on('state', (st) => states.push(st));
      await api(node.url, 'POST', '/auth/logout', { token: t });
      expect(await told).toMatchObject({ code: 'token_revoked', retryable: false });
      await eventually(() => expect(c.status).toMatchObject({ state: 'offline', reason: 'token_revoked', retrying: false }));
      expect(states.some((st) => st.state === 'reconnecting')).toBe(false);
    } finally {
      c.close();
    }
  });
});

describe('revocation keys are scoped by tenant', () => {
  it('a logout in tenant A does not revoke nor disconnect the token of tenant B with the same jti', async () => {
    const sign = (tid: string) =>
      new SignJWT({ tid, role: 'editor' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('same-user')
        .setJti('shared-jti-1')
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(TEST_SECRET));
    const a = await sign('tenant-a');
    const b = await sign('tenant-b');
    const onB = await client(node.url, { token: b });
    try {
      const seenB = watch(onB);
      const onA = await client(node.url, { token: a });
      const seenA = watch(onA);
      expect((await api<{ data: { revoked: boolean } }>(node.url, 'POST', '/auth/logout', { token: a })).body.data.revoked).toBe(true);
      await eventually(() => expect(seenA).toContain('disconnect io server disconnect'));
      expect((await api(node.url, 'GET', '/api/me', { token: a })).status).toBe(401);
      // B: still connected, still accepted over HTTP and for a new handshake. The barrier is a round
      // trip on B's own socket: a revocation notice sent to B before its ack would have arrived first.
      expect(await request(onB, 'subscribe', { room: 'tenant' })).toMatchObject({ data: { room: 'tenant' } });
      expect(seenB).toEqual([]);
      expect(onB.connected).toBe(true);
      expect(await api(node.url, 'GET', '/api/me', { token: b })).toMatchObject({ status: 200, body: { data: { tenant: 'tenant-b' } } });
      (await client(node.url, { token: b })).close();
    } finally {
      onB.close();
    }
  });
});

describe('an identity provider (JWKS) that is down', () => {
  let mode: 'up' | 'refuse' | 'error' = 'refuse';
  let jwks: { keys: object[] };
  let privateKey: CryptoKey;
  let idp: ReturnType<typeof createServer>;
  let viaJwks: FluxoNode;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey;
    jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] };
    idp = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (mode === 'refuse') return void req.socket.destroy();
      if (mode === 'error') return void res.writeHead(503).end('maintenance');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/jwks`;
    viaJwks = await startNode({ JWT_SECRET: '', JWT_JWKS_URL: url, RATE_LIMITS: 'handshake=1000/1' });
  });
  afterAll(async () => {
    await viaJwks?.close();
    idp.closeAllConnections();
    await new Promise<void>((r) => idp.close(() => r()));
  });

  const rs256 = (sub: string) =>
    new SignJWT({ tid: 'acme', role: 'editor' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject(sub)
      .setExpirationTime('1h')
      .sign(privateKey);

  it('refuses the handshake with auth_unavailable and HTTP with 503, not token_invalid; the SDK keeps retrying until it is back', async () => {
    const t = await rs256('idp-user');
    for (const m of ['refuse', 'error'] as const) {
      mode = m;
      expect((await connectError(client(viaJwks.url, { token: t }))).data?.code, m).toBe('auth_unavailable');
      const me = await api<{ error: { code: string } }>(viaJwks.url, 'GET', '/api/me', { token: t });
      expect(me.status, m).toBe(503);
      expect(me.body.error.code, m).toBe('auth_unavailable');
    }
    // The SDK retries with back-off instead of giving up for good.
    mode = 'refuse';
    const c = sdkConnect({ url: viaJwks.url, token: t, transports: ['websocket'], backoff: { initialMs: 50, maxMs: 200 } });
    try {
      const states: ConnectionStatus[] = [];
      c.on('state', (st) => states.push(st));
      await eventually(() => expect(states.filter((st) => st.state === 'reconnecting').length).toBeGreaterThanOrEqual(2));
      expect(states.some((st) => st.state === 'offline' && !st.retrying)).toBe(false);
      mode = 'up';
      await c.whenConnected();
      expect(c.session).toMatchObject({ userId: 'idp-user', tenant: 'acme' });
    } finally {
      c.close();
    }
    expect((await api(viaJwks.url, 'GET', '/api/me', { token: t })).status).toBe(200);
  });
});
