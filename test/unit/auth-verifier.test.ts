import { createLocalJWKSet, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintToken } from '../../server/auth/mint.js';
import { createTokenVerifier } from '../../server/auth/verifier.js';
import { rejection } from '../harness/rejections.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

function sign(payload: JWTPayload, opts: { alg?: string; secret?: Uint8Array } = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: opts.alg ?? 'HS256' }).sign(opts.secret ?? key);
}
const good: JWTPayload = { sub: 'u1', tid: 'acme', role: 'editor', exp: now() + 600 };

describe('createTokenVerifier with an HS256 secret', () => {
  const verifier = createTokenVerifier({ secret: SECRET, clockToleranceS: 5 });

  it('accepts a valid token and maps its claims to a Principal', async () => {
    const token = await mintToken({ sub: 'ada@x.io', tid: 'acme', role: 'admin', name: 'Ada', ttlS: 60, secret: SECRET });
    const p = await verifier.verify(token);
    expect(p).toMatchObject({ userId: 'ada@x.io', tenant: 'acme', role: 'admin', name: 'Ada' });
    expect(p.exp).toBeGreaterThan(now());
    expect(p.revocationKey).toMatch(/^jti:acme:[0-9a-f-]{36}$/); // the jti, scoped by tenant
  });

  it('uses the sha256 of the token as revocation key when there is no jti', async () => {
    const token = await sign(good);
    const p = await verifier.verify(token);
    expect(p.revocationKey).toMatch(/^[0-9a-f]{64}$/);
    expect(p.name).toBeNull();
  });

  it('refuses an expired token with token_expired', async () => {
    const err = await rejection(verifier.verify(await sign({ ...good, exp: now() - 60 })));
    expect(err.code).toBe('token_expired');
  });

  it('tolerates clock skew within clockToleranceS', async () => {
    await expect(verifier.verify(await sign({ ...good, exp: now() - 2 }))).resolves.toBeTruthy();
  });

  it('refuses a token whose nbf is in the future', async () => {
    const err = await rejection(verifier.verify(await sign({ ...good, nbf: now() + 120 })));
    expect(err.code).toBe('token_invalid');
  });

  it('refuses a token signed with another secret', async () => {
    const other = new TextEncoder().encode('another-secret-that-is-long-enough-987654321');
    const err = await rejection(verifier.verify(await sign(good, { secret: other })));
    expect(err.code).toBe('token_invalid');
    expect(err.message).toBe('The token signature is not valid.');
  });

  it('refuses an alg "none" token', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(good)}.`;
    expect((await rejection(verifier.verify(token))).code).toBe('token_invalid');
  });

  it('refuses an HS512 token when only HS256 is allowed', async () => {
    expect((await rejection(verifier.verify(await sign(good, { alg: 'HS512' })))).code).toBe('token_invalid');
  });

  it.each([
    ['exp', { sub: 'u1', tid: 'acme', role: 'editor' }],
    ['tid', { sub: 'u1', role: 'editor', exp: now() + 600 }],
    ['sub', { tid: 'acme', role: 'editor', exp: now() + 600 }],
  ])('refuses a token without %s', async (_claim, payload) => {
    expect((await rejection(verifier.verify(await sign(payload)))).code).toBe('token_invalid');
  });

  it.each([
    ['role', { ...good, role: 'owner' }],
    ['tid', { ...good, tid: 'ac me' }],
    ['sub', { ...good, sub: 'x'.repeat(129) }],
    ['name', { ...good, name: 'n'.repeat(101) }],
  ])('refuses a bad %s claim without echoing it', async (claim, payload) => {
    const err = await rejection(verifier.verify(await sign(payload)));
    expect(err.code).toBe('token_invalid');
    expect(err.message).toContain(`"${claim}"`);
    expect(err.message).not.toContain(String((payload as Record<string, unknown>)[claim]));
  });

  it('refuses garbage', async () => {
    for (const token of ['', 'abc', 'a.b.c', 'x'.repeat(10_000)]) {
      expect((await rejection(verifier.verify(token))).code).toBe('token_invalid');
    }
  });

  it('never puts the token in the error', async () => {
    const token = await sign({ ...good, exp: now() - 60 });
    const err = await rejection(verifier.verify(token));
    expect(JSON.stringify(err.toBody())).not.toContain(token.split('.')[1]);
  });
});

describe('issuer, audience and revocation', () => {
  const verifier = createTokenVerifier({ secret: SECRET, clockToleranceS: 0, issuer: 'https://idp', audience: 'fluxo' });

  it('accepts matching iss/aud', async () => {
    await expect(verifier.verify(await sign({ ...good, iss: 'https://idp', aud: 'fluxo' }))).resolves.toBeTruthy();
  });

  it.each([
    ['issuer', { ...good, iss: 'https://evil', aud: 'fluxo' }],
    ['audience', { ...good, iss: 'https://idp', aud: 'other' }],
    ['missing issuer', { ...good, aud: 'fluxo' }],
  ])('refuses a %s mismatch', async (_what, payload) => {
    expect((await rejection(verifier.verify(await sign(payload)))).code).toBe('token_invalid');
  });

  it('refuses a revoked token with token_revoked', async () => {
    const revoked = new Set<string>();
    const v = createTokenVerifier({ secret: SECRET, clockToleranceS: 0, isRevoked: (k) => revoked.has(k) });
    const token = await mintToken({ sub: 'u1', tid: 'acme', role: 'viewer', ttlS: 60, secret: SECRET });
    const p = await v.verify(token);
    revoked.add(p.revocationKey);
    expect((await rejection(v.verify(token))).code).toBe('token_revoked');
  });

  it("keys revocations by tenant: one tenant cannot revoke another tenant's token of the same jti", async () => {
    const revoked = new Set<string>();
    const v = createTokenVerifier({ secret: SECRET, clockToleranceS: 0, isRevoked: (k) => revoked.has(k) });
    const a = await sign({ ...good, tid: 'tenant-a', jti: 'same-jti' });
    const b = await sign({ ...good, tid: 'tenant-b', jti: 'same-jti' });
    const pa = await v.verify(a);
    const pb = await v.verify(b);
    expect(pa.revocationKey).toBe('jti:tenant-a:same-jti');
    expect(pb.revocationKey).not.toBe(pa.revocationKey);
    revoked.add(pa.revocationKey);
    expect((await rejection(v.verify(a))).code).toBe('token_revoked');
    await expect(v.verify(b)).resolves.toMatchObject({ tenant: 'tenant-b' });
    // A jti that looks like another tenant's key is still this tenant's own.
    const sneaky = await v.verify(await sign({ ...good, tid: 'tenant-a', jti: 'tenant-b:same-jti' }));
    expect(sneaky.revocationKey).toBe('jti:tenant-a:tenant-b:same-jti');
    expect(revoked.has(sneaky.revocationKey)).toBe(false);
  });

  it('still honours a revocation recorded under the bare jti (before keys were scoped)', async () => {
    const revoked = new Set<string>(['old-jti']);
    const v = createTokenVerifier({ secret: SECRET, clockToleranceS: 0, isRevoked: (k) => revoked.has(k) });
    expect((await rejection(v.verify(await sign({ ...good, jti: 'old-jti' })))).code).toBe('token_revoked');
  });
});

describe('configuration checks', () => {
  it.each([
    [{ clockToleranceS: 0 }, /exactly one/],
    [{ secret: SECRET, jwksUrl: 'https://idp/jwks', clockToleranceS: 0 }, /exactly one/],
    [{ secret: 'short', clockToleranceS: 0 }, /32/],
    [{ secret: SECRET, algorithms: ['RS256'], clockToleranceS: 0 }, /RS256/],
    [{ secret: SECRET, algorithms: ['none'], clockToleranceS: 0 }, /none/],
    [{ jwksUrl: 'https://idp/jwks', algorithms: ['HS256'], clockToleranceS: 0 }, /HS256/],
    [{ jwksUrl: 'https://idp/jwks', algorithms: [], clockToleranceS: 0 }, /empty/],
  ])('refuses %j', (opts, message) => {
    expect(() => createTokenVerifier(opts)).toThrow(message);
  });
});

describe('createTokenVerifier with asymmetric keys', () => {
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let es: Awaited<ReturnType<typeof generateKeyPair>>;
  let jwks: { keys: object[] };

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    es = await generateKeyPair('ES256', { extractable: true });
    jwks = {
      keys: [
        { ...(await exportJWK(rsa.publicKey)), kid: 'rsa', alg: 'RS256', use: 'sig' },
        { ...(await exportJWK(es.publicKey)), kid: 'es', alg: 'ES256', use: 'sig' },
      ],
    };
  });

  it('accepts RS256 and ES256 tokens from a local key set', async () => {
    const v = createTokenVerifier({ keySet: createLocalJWKSet(jwks as never), clockToleranceS: 0 });
    const rs = await new SignJWT(good).setProtectedHeader({ alg: 'RS256', kid: 'rsa' }).sign(rsa.privateKey);
    const ec = await new SignJWT(good).setProtectedHeader({ alg: 'ES256', kid: 'es' }).sign(es.privateKey);
    await expect(v.verify(rs)).resolves.toMatchObject({ userId: 'u1' });
    await expect(v.verify(ec)).resolves.toMatchObject({ userId: 'u1' });
  });

  it('refuses an HS256 token when RS256 is configured (algorithm confusion)', async () => {
    const v = createTokenVerifier({ keySet: createLocalJWKSet(jwks as never), algorithms: ['RS256'], clockToleranceS: 0 });
    // The classic attack: HMAC keyed with the public key's bytes.
    const publicJwk = JSON.stringify(jwks.keys[0]);
    const forged = await sign(good, { secret: new TextEncoder().encode(publicJwk) });
    const err = await rejection(v.verify(forged));
    expect(err.code).toBe('token_invalid');
    expect(err.message).toBe('The token algorithm is not allowed.');
  });

  it('refuses a token signed by a key not in the set', async () => {
    const stranger = await generateKeyPair('RS256');
    const v = createTokenVerifier({ keySet: createLocalJWKSet(jwks as never), clockToleranceS: 0 });
    const token = await new SignJWT(good).setProtectedHeader({ alg: 'RS256', kid: 'rsa' }).sign(stranger.privateKey);
    expect((await rejection(v.verify(token))).code).toBe('token_invalid');
  });
});

describe('a token verified before', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('is not checked again within 30 s, then is', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    let checks = 0;
    // The key resolver runs once per signature check.
    const keySet = async () => {
      checks++;
      return publicKey;
    };
    const v = createTokenVerifier({ keySet, algorithms: ['ES256'], clockToleranceS: 0 });
    const token = await new SignJWT(good).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
    vi.useFakeTimers({ toFake: ['Date'] });
    await v.verify(token);
    await v.verify(token);
    expect(checks).toBe(1);
    vi.setSystemTime(Date.now() + 31_000);
    await v.verify(token);
    expect(checks).toBe(2);
  });

  it('is still refused with token_expired once exp has passed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = createTokenVerifier({ secret: SECRET, clockToleranceS: 1 });
    const token = await sign({ ...good, exp: now() + 2 });
    await v.verify(token);
    vi.setSystemTime(Date.now() + 3_000);
    expect((await rejection(v.verify(token))).code).toBe('token_expired');
  });

  it('is still refused with token_revoked once revoked', async () => {
    let revoked = false;
    const v = createTokenVerifier({ secret: SECRET, clockToleranceS: 0, isRevoked: () => revoked });
    const token = await sign(good);
    await v.verify(token);
    revoked = true;
    expect((await rejection(v.verify(token))).code).toBe('token_revoked');
  });
});
