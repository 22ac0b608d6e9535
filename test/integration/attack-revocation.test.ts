/**
 * Logout, then reuse: against real node processes on one Postgres. A logged-out token must be
 * refused everywhere it could be used — bearer, cookie, socket handshake, `auth:refresh` — on this
 * node at once, on another node within the documented bound, and after a restart; its live sockets
 * are told why (`server:disconnect` `token_revoked`) and cut. Revocations are scoped by tenant: a
 * token of another tenant with the same `jti` is not affected.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, freshAddress, type HostileNode, SECRET, startHostileNode, token, waitFor } from '../harness/hostile.js';
import { type SioClient, sioClient } from '../harness/wire.js';

let node: HostileNode;
let second: HostileNode | null = null;

beforeAll(async () => {
  node = await startHostileNode({}, { postgres: true, name: 'revocation' });
});
afterAll(async () => {
  await second?.stop();
  await node?.stop();
});

const withJti = (sub: string, tid: string, jti: string) =>
  new SignJWT({ tid, role: 'editor' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setJti(jti)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

async function socketOf(tok: string, transport: 'websocket' | 'polling' = 'websocket'): Promise<SioClient> {
  const s = await sioClient(node.url, { token: tok }, { transport, localAddress: freshAddress() });
  expect(s.connected, JSON.stringify(s.connectError)).toBe(true);
  return s;
}

const refusedCode = async (url: string, tok: string, via: 'bearer' | 'cookie' = 'bearer') =>
  (
    await call(url, 'GET', '/api/me', {
      from: freshAddress(),
      ...(via === 'bearer' ? { token: tok } : { headers: { cookie: `fluxo_session=${tok}` } }),
    })
  ).body.error?.code;

describe('a logged-out token', () => {
  it('is refused as bearer, cookie, handshake and refresh, and its live sockets are told why and cut', async () => {
    const t = await token('leaver', 'acme', 'editor');
    const ws = await socketOf(t, 'websocket');
    const polling = await socketOf(t, 'polling');
    const other = await socketOf(await token('leaver', 'acme', 'editor'));
    const out = await call(node.url, 'POST', '/auth/logout', { token: t });
    expect(out.status).toBe(200);
    expect(out.body.data).toMatchObject({ revoked: true });
    for (const [name, s] of [
      ['websocket', ws],
      ['polling', polling],
    ] as const) {
      await s.session.until((r) => r.closed !== null, Date.now() + 10_000);
      expect(s.session.closed, `${name} socket still open after logout`).not.toBeNull();
      const told = s.events().find((e) => e.event === 'server:disconnect');
      expect(told?.args[0], `${name}: no server:disconnect before the cut`).toMatchObject({ code: 'token_revoked' });
    }
    expect(await refusedCode(node.url, t)).toBe('token_revoked');
    expect(await refusedCode(node.url, t, 'cookie')).toBe('token_revoked');
    const again = await sioClient(node.url, { token: t }, { localAddress: freshAddress() });
    expect(again.connected).toBe(false);
    expect((again.connectError as { data?: { code?: string } }).data?.code).toBe('token_revoked');
    await again.close();
    // Another socket of the same user cannot take the revoked token on.
    expect(await other.ask('auth:refresh', { token: t })).toMatchObject({ error: { code: 'token_revoked' } });
    expect(other.session.closed).toBeNull();
    // A second logout with it revokes nothing more.
    const twice = await call(node.url, 'POST', '/auth/logout', { token: t });
    expect(twice.body.data).toMatchObject({ revoked: false });
    await other.close();
  });

  it('revokes what a socket refreshed to: the new token, not only the one it connected with', async () => {
    const first = await token('refresher', 'acme', 'editor');
    const s = await socketOf(first);
    const next = await token('refresher', 'acme', 'editor');
    expect(await s.ask('auth:refresh', { token: next })).toMatchObject({ data: {} });
    expect((await call(node.url, 'POST', '/auth/logout', { token: next })).status).toBe(200);
    await s.session.until((r) => r.closed !== null, Date.now() + 10_000);
    expect(s.session.closed, 'the socket carrying the revoked token is still open').not.toBeNull();
  });

  it('stays revoked after the node restarts (the revocation is in the database)', async () => {
    const t = await token('restart', 'acme', 'viewer');
    expect((await call(node.url, 'POST', '/auth/logout', { token: t })).status).toBe(200);
    await node.restart();
    expect(await refusedCode(node.url, t)).toBe('token_revoked');
  });

  it('is refused by another node on the same database within the documented bound (2 s + replica lag)', async () => {
    second = await startHostileNode(
      { DATABASE_URL: node.pg!.url, MIGRATE_ON_START: 'false' },
      { name: 'revocation-2', ...(node.pg ? { database: node.pg } : {}) },
    );
    const t = await token('roamer', 'acme', 'viewer');
    expect((await call(second.url, 'GET', '/api/me', { token: t })).status).toBe(200);
    const started = Date.now();
    expect((await call(node.url, 'POST', '/auth/logout', { token: t })).status).toBe(200);
    await waitFor(
      async () => (await refusedCode((second as HostileNode).url, t)) === 'token_revoked',
      'node 2 to refuse the token',
      10_000,
      100,
    );
    // REVOCATION_POLL_MS is 2 s; no replica here. Generous for a busy machine.
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('is scoped by tenant: the same jti in another tenant is not revoked, nor can it revoke', async () => {
    const jti = `shared-${Date.now()}`;
    const acme = await withJti('u1', 'acme', jti);
    const globex = await withJti('u1', 'globex', jti);
    expect((await call(node.url, 'POST', '/auth/logout', { token: acme })).status).toBe(200);
    expect(await refusedCode(node.url, acme)).toBe('token_revoked');
    const other = await call(node.url, 'GET', '/api/me', { token: globex, from: freshAddress() });
    expect(other.status, `the other tenant's token with the same jti: ${JSON.stringify(other.body)}`).toBe(200);
    // The same jti in the same tenant (another token of that issuer's series) is the revoked one.
    expect(await refusedCode(node.url, await withJti('u2', 'acme', jti))).toBe('token_revoked');
  });

  it('logged nothing at error level', () => {
    expect(node.alive()).toBe(true);
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
    if (second) expect(second.log.problems().map((l) => l.text)).toEqual([]);
  });
});
