/**
 * JWT attacks against real node processes: one verifying HS256 with JWT_SECRET (and a required
 * issuer and audience), one verifying RS256 against a JWKS served by this test. Every forged,
 * mangled or incomplete token must be refused with a typed 401 over HTTP and a typed connect_error
 * over the socket — never accepted, never a 500 — and nothing a token carries (jku, x5u, jwk, kid)
 * may make the node fetch a key from where the token says.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../shared/errors.js';
import {
  call,
  claimsOf,
  forgeToken,
  freshAddress,
  type HostileNode,
  SECRET,
  type Spy,
  startHostileNode,
  startSpy,
} from '../harness/hostile.js';
import { sioClient } from '../harness/wire.js';

const ISS = 'https://issuer.example';
const AUD = 'fluxo';
const KEY = 'attack-jwt-publish-key-0123456789abc';

/** A little HTTP server that counts its requests: a JWKS endpoint, or an attacker's. */
async function keyServer(body: () => { status: number; json: unknown }): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const { status, json } = body();
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(json));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Refused over HTTP (typed 401 with one of `codes`) and over a socket handshake (typed connect_error). */
async function expectRefused(node: HostileNode, tok: string, what: string, codes: string[] = ['token_invalid']): Promise<void> {
  const res = await call(node.url, 'GET', '/api/me', { token: tok, from: freshAddress() });
  expect(codes, `${what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`).toContain(res.body.error?.code);
  expect(res.status, what).toBe(401);
  const s = await sioClient(node.url, { token: tok }, { localAddress: freshAddress() });
  try {
    expect(s.connected, `${what}: the socket connected`).toBe(false);
    const code = (s.connectError as { data?: { code?: string } }).data?.code;
    expect(codes, `${what}: connect_error ${JSON.stringify(s.connectError).slice(0, 200)}`).toContain(code);
  } finally {
    await s.close();
  }
}

describe('JWT attacks on an HS256 node (JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE)', () => {
  let node: HostileNode;
  let spy: Spy;
  let attacker: Awaited<ReturnType<typeof keyServer>>;
  const claims = (over: Record<string, unknown> = {}, drop: string[] = []) => {
    const c: Record<string, unknown> = { ...claimsOf('mallory', 'victim', 'admin'), iss: ISS, aud: AUD, ...over };
    for (const k of drop) delete c[k];
    return c;
  };
  const hs = (over: Record<string, unknown> = {}, drop: string[] = [], header: Record<string, unknown> = {}) =>
    forgeToken({ alg: 'HS256', typ: 'JWT', ...header }, claims(over, drop), SECRET);

  beforeAll(async () => {
    attacker = await keyServer(() => ({
      status: 200,
      json: { keys: [{ kty: 'oct', k: Buffer.from('attacker').toString('base64url'), kid: 'evil' }] },
    }));
    node = await startHostileNode(
      { JWT_ISSUER: ISS, JWT_AUDIENCE: AUD, JWT_CLOCK_TOLERANCE_S: '5', PUBLISH_API_KEY: KEY },
      { name: 'jwt' },
    );
    spy = await startSpy(node.url, { tenant: 'victim', publishKey: KEY, issuer: ISS, audience: AUD });
  });
  afterAll(async () => {
    spy?.close();
    await node?.stop();
    await attacker?.close();
  });

  it('accepts a well-made token (the control)', async () => {
    const res = await call(node.url, 'GET', '/api/me', { token: hs(), from: freshAddress() });
    expect(res.status).toBe(200);
  });

  it('refuses alg none in every spelling, with or without a signature', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      const unsigned = forgeToken({ alg, typ: 'JWT' }, claims(), null);
      await expectRefused(node, unsigned, `alg ${alg}`);
      await expectRefused(node, `${unsigned}${hs().split('.')[2]}`, `alg ${alg} with a signature`);
    }
    await expectRefused(node, hs().split('.').slice(0, 2).join('.') + '.', 'a stripped signature');
    await expectRefused(node, hs().split('.').slice(0, 2).join('.'), 'two segments');
  });

  it('refuses algorithms other than HS256, keys other than the secret, and alg confusion', async () => {
    await expectRefused(node, forgeToken({ alg: 'HS512', typ: 'JWT' }, claims(), SECRET), 'HS512 with the right secret');
    await expectRefused(node, forgeToken({ alg: 'HS384', typ: 'JWT' }, claims(), SECRET), 'HS384 with the right secret');
    await expectRefused(node, forgeToken({ alg: 'RS256', typ: 'JWT' }, claims(), SECRET), 'RS256 header over an HMAC');
    await expectRefused(node, forgeToken({ alg: 'HS256', typ: 'JWT' }, claims(), 'another-secret-that-is-long-enough!!'), 'a wrong secret');
    await expectRefused(node, forgeToken({ alg: 'HS256', typ: 'JWT' }, claims(), ''), 'an empty secret');
    const { DEV_JWT_SECRET } = await import('../../server/auth/dev-secret.js');
    await expectRefused(node, forgeToken({ alg: 'HS256', typ: 'JWT' }, claims(), DEV_JWT_SECRET), 'the built-in development secret');
  });

  it('never fetches or trusts a key the token points to (jku, x5u, jwk, kid)', async () => {
    const evil = 'attacker-secret-attacker-secret-attacker';
    const jwk = { kty: 'oct', k: Buffer.from(evil).toString('base64url') };
    await expectRefused(node, forgeToken({ alg: 'HS256', jku: `${attacker.url}/jwks.json`, kid: 'evil' }, claims(), evil), 'jku');
    await expectRefused(node, forgeToken({ alg: 'HS256', x5u: `${attacker.url}/cert.pem` }, claims(), evil), 'x5u');
    await expectRefused(node, forgeToken({ alg: 'HS256', jwk }, claims(), evil), 'an embedded jwk');
    for (const kid of ['../../../../dev/null', "' OR '1'='1", 'x'.repeat(2000), '', 'evil']) {
      await expectRefused(node, forgeToken({ alg: 'HS256', kid }, claims(), evil), `kid ${kid.slice(0, 20)}`);
    }
    expect(attacker.hits, 'the node fetched a URL named in a token').toEqual([]);
  });

  it('refuses headers it does not understand: crit, b64', async () => {
    await expectRefused(node, hs({}, [], { crit: ['exp'] }), 'crit naming a claim');
    await expectRefused(node, hs({}, [], { crit: ['x-unknown'], 'x-unknown': 1 }), 'crit naming an unknown extension');
    await expectRefused(node, hs({}, [], { b64: false, crit: ['b64'] }), 'b64 false');
  });

  it('refuses missing or wrong claims: iss, aud, exp, nbf, sub, tid, role, jti, name', async () => {
    const cases: [string, string, string[]?][] = [
      ['no iss', hs({}, ['iss'])],
      ['another iss', hs({ iss: 'https://evil.example' })],
      ['no aud', hs({}, ['aud'])],
      ['another aud', hs({ aud: 'other' })],
      ['aud list without ours', hs({ aud: ['a', 'b'] })],
      ['no exp', hs({}, ['exp'])],
      ['exp a string', hs({ exp: '9999999999' })],
      ['exp past (beyond the tolerance)', hs({ exp: Math.floor(Date.now() / 1000) - 60 }), ['token_expired']],
      ['nbf future', hs({ nbf: Math.floor(Date.now() / 1000) + 3600 })],
      ['no sub', hs({}, ['sub'])],
      ['sub with a slash', hs({ sub: 'a/b' })],
      ['sub an object', hs({ sub: { $ne: null } })],
      ['no tid', hs({}, ['tid'])],
      ['tid with a colon', hs({ tid: 'victim:x' })],
      ['tid of 65 characters', hs({ tid: 'x'.repeat(65) })],
      ['tid an array', hs({ tid: ['victim'] })],
      ['no role', hs({}, ['role'])],
      ['role owner', hs({ role: 'owner' })],
      ['role ADMIN', hs({ role: 'ADMIN' })],
      ['role a list', hs({ role: ['admin'] })],
      ['name of 101 characters', hs({ name: 'x'.repeat(101) })],
      ['jti of 257 characters', hs({ jti: 'x'.repeat(257) })],
      // The revocation key: one Postgres refuses (U+0000), one it stores as another string (U+FFFD).
      ['jti with U+0000', hs({ jti: 'a\u0000b' })],
      ['jti with a lone surrogate', hs({ jti: 'a\ud800b' })],
      ['jti with a newline', hs({ jti: 'a\nb' })],
      ['name with a lone surrogate', hs({ name: 'x\udc00' })],
      // Past any Date: a socket's expiry timer and the revocation's expiry would be Invalid Date.
      ['exp past the year 9999', hs({ exp: 9e12 })],
    ];
    for (const [what, tok, codes] of cases) await expectRefused(node, tok, what, codes ?? ['token_invalid']);
  });

  it('refuses garbage and very long tokens with a typed answer', async () => {
    for (const [what, tok] of [
      ['a.b.c', 'a.b.c'],
      ['dots', '...'],
      ['not base64', '!!!.@@@.###'],
      ['a JSON header nested 10,000 deep', `${Buffer.from('['.repeat(10_000) + ']'.repeat(10_000)).toString('base64url')}.e30.x`],
      ['8,193 characters', `${hs()}${'A'.repeat(8193)}`.slice(0, 8193)],
      ['60 KB', 'A'.repeat(60_000)],
    ] as [string, string][]) {
      const res = await call(node.url, 'GET', '/api/me', { token: tok, from: freshAddress() });
      expect(res.status, `${what}: ${JSON.stringify(res.body).slice(0, 200)} ${res.closed ?? ''}`).toBe(401);
      expect(ERROR_CODES).toContain(res.body.error?.code);
    }
    // The same through the socket's auth payload; over the Engine.IO cap a close is the answer.
    for (const size of [8193, 60_000, 1_000_000]) {
      const s = await sioClient(node.url, { token: 'A'.repeat(size) }, { localAddress: freshAddress() });
      expect(s.connected).toBe(false);
      const code = (s.connectError as { data?: { code?: string } }).data?.code;
      if (code !== undefined) expect(code).toBe('token_invalid');
      else expect(s.session.closed, `${size}: neither a typed refusal nor a close`).not.toBeNull();
      await s.close();
    }
    expect(node.alive()).toBe(true);
  });

  it('let no forged token reach the victim tenant, and logged nothing at error level', async () => {
    await spy.assertNothingElse();
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
  });
});

describe('JWT attacks on an RS256 node (JWT_JWKS_URL)', () => {
  let node: HostileNode;
  let jwks: Awaited<ReturnType<typeof keyServer>>;
  let attacker: Awaited<ReturnType<typeof keyServer>>;
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  let evilKeys: Awaited<ReturnType<typeof generateKeyPair>>;
  let publicJwk: JWK;
  // Down until the first test has seen the outage: the node has not fetched the set yet.
  let jwksDown = true;
  const sign = (k: CryptoKey, header: Record<string, unknown>, over: Record<string, unknown> = {}) =>
    new SignJWT({ ...claimsOf('mallory', 'victim', 'admin'), ...over })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', ...header } as { alg: string })
      .sign(k);

  beforeAll(async () => {
    keys = await generateKeyPair('RS256', { extractable: true });
    evilKeys = await generateKeyPair('RS256', { extractable: true });
    publicJwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const evilJwk = { ...(await exportJWK(evilKeys.publicKey)), kid: 'evil', alg: 'RS256' };
    jwks = await keyServer(() => (jwksDown ? { status: 503, json: { error: 'down' } } : { status: 200, json: { keys: [publicJwk] } }));
    attacker = await keyServer(() => ({ status: 200, json: { keys: [evilJwk] } }));
    // JWT_SECRET empty: unset, so the node verifies with the JWKS only.
    node = await startHostileNode({ JWT_SECRET: '', JWT_JWKS_URL: `${jwks.url}/jwks.json` }, { name: 'jwks' });
  });
  afterAll(async () => {
    await node?.stop();
    await jwks?.close();
    await attacker?.close();
  });

  it('answers a JWKS outage with auth_unavailable (503, retryable) over HTTP and the socket, not token_invalid', async () => {
    const tok = await sign(keys.privateKey, {});
    const res = await call(node.url, 'GET', '/api/me', { token: tok, from: freshAddress() });
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    expect(res.body.error?.code).toBe('auth_unavailable');
    const s = await sioClient(node.url, { token: tok }, { localAddress: freshAddress() });
    expect(s.connected).toBe(false);
    expect((s.connectError as { data?: { code?: string } }).data?.code).toBe('auth_unavailable');
    await s.close();
    expect(jwks.hits.length).toBeGreaterThan(0);
    jwksDown = false;
  });

  it('accepts a token signed with the JWKS key once the set can be fetched (the control)', async () => {
    jwksDown = false;
    const res = await call(node.url, 'GET', '/api/me', { token: await sign(keys.privateKey, {}), from: freshAddress() });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it('refuses HS256 signed with the public key (key confusion) and alg none', async () => {
    const pem = await exportSPKI(keys.publicKey);
    const claims = claimsOf('mallory', 'victim', 'admin');
    for (const [what, secret] of [
      ['the PEM', pem],
      ['the PEM without its last newline', pem.trimEnd()],
      ['the JWK as JSON', JSON.stringify(publicJwk)],
      ['the modulus', Buffer.from(publicJwk.n ?? '', 'base64url')],
    ] as [string, string | Buffer][]) {
      await expectRefused(node, forgeToken({ alg: 'HS256', typ: 'JWT', kid: 'k1' }, claims, secret), `HS256 keyed with ${what}`);
    }
    await expectRefused(node, forgeToken({ alg: 'none', kid: 'k1' }, claims, null), 'alg none');
  });

  it('never trusts a key the token brings or points to (jwk, jku, x5u, kid)', async () => {
    const evilPublic = await exportJWK(evilKeys.publicKey);
    await expectRefused(node, await sign(evilKeys.privateKey, { jwk: evilPublic }), 'an embedded jwk with the real kid');
    await expectRefused(node, await sign(evilKeys.privateKey, { jwk: evilPublic, kid: 'evil' }), 'an embedded jwk');
    await expectRefused(node, await sign(evilKeys.privateKey, { jku: `${attacker.url}/jwks.json`, kid: 'evil' }), 'jku');
    await expectRefused(node, await sign(evilKeys.privateKey, { x5u: `${attacker.url}/cert.pem`, kid: 'evil' }), 'x5u');
    await expectRefused(node, await sign(evilKeys.privateKey, {}), "the attacker's key under the real kid");
    await expectRefused(node, await sign(keys.privateKey, { kid: 'unknown' }), 'an unknown kid');
    expect(attacker.hits, 'the node fetched a URL named in a token').toEqual([]);
  });

  it('logged nothing at error level', () => {
    expect(node.alive()).toBe(true);
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
  });
});
