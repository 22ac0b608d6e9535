import { describe, expect, it, vi } from 'vitest';
import { type RevocationStore, Revocations } from '../../server/auth/revocations.js';

function fakeStore() {
  const rows = new Map<string, Date>();
  const store: RevocationStore & { rows: Map<string, Date> } = {
    rows,
    revokeToken: vi.fn(async (key: string, expiresAt: Date) => {
      rows.set(key, expiresAt);
    }),
    isRevoked: vi.fn(async (key: string) => rows.has(key)),
  };
  return store;
}

describe('Revocations', () => {
  it('writes to the store before answering from its cache', async () => {
    const store = fakeStore();
    const r = new Revocations({ store, graceMs: 0 });
    const exp = Math.floor(Date.now() / 1000) + 60;
    await r.revoke({ revocationKey: 'j1', exp });
    expect(store.rows.get('j1')?.getTime()).toBe(exp * 1000);
    expect(await r.isRevoked('j1')).toBe(true);
    expect(store.isRevoked).not.toHaveBeenCalled();
  });

  it('does not cache a revocation when the store write fails', async () => {
    const store = fakeStore();
    store.revokeToken = vi.fn(async () => {
      throw new Error('db down');
    });
    const r = new Revocations({ store });
    await expect(r.revoke({ revocationKey: 'j1', exp: Math.floor(Date.now() / 1000) + 60 })).rejects.toThrow('db down');
    expect(r.size).toBe(0);
  });

  it('sees a revocation made by another node through the store', async () => {
    const store = fakeStore();
    const a = new Revocations({ store });
    const b = new Revocations({ store });
    expect(await b.isRevoked('j1')).toBe(false);
    await a.revoke({ revocationKey: 'j1', exp: Math.floor(Date.now() / 1000) + 60 });
    expect(await b.isRevoked('j1')).toBe(true);
  });

  it('reuses a negative answer only for negativeCacheMs, capped at 1 s', async () => {
    let now = 1_000_000;
    const store = fakeStore();
    const r = new Revocations({ store, negativeCacheMs: 60_000, now: () => now });
    expect(await r.isRevoked('j1')).toBe(false);
    store.rows.set('j1', new Date(now + 60_000));
    now += 500;
    expect(await r.isRevoked('j1')).toBe(false); // within the (capped) 1 s window
    now += 600;
    expect(await r.isRevoked('j1')).toBe(true);
  });

  it('takes pushed revocations (markRevoked) and forgets them after expiry', async () => {
    let now = 1_000_000;
    const store = fakeStore();
    const r = new Revocations({ store, now: () => now });
    r.markRevoked('j2', now + 1000);
    expect(await r.isRevoked('j2')).toBe(true);
    expect(store.isRevoked).not.toHaveBeenCalled();
    now += 1001;
    expect(await r.isRevoked('j2')).toBe(false);
    r.markRevoked('old', now - 1);
    expect(r.size).toBe(0);
  });

  it('prunes expired keys as new ones arrive', () => {
    let now = 1_000_000;
    const r = new Revocations({ store: fakeStore(), now: () => now });
    for (let i = 0; i < 100; i++) r.markRevoked(`k${i}`, now + 100);
    now += 20_000;
    r.markRevoked('fresh', now + 100);
    expect(r.size).toBe(1);
  });
});

describe('Revocations with the verifier', () => {
  it('refuses a token on every node once one node revokes it', async () => {
    const { createTokenVerifier } = await import('../../server/auth/verifier.js');
    const { mintToken } = await import('../../server/auth/mint.js');
    const secret = 'x'.repeat(40);
    const store = fakeStore();
    const [a, b] = [new Revocations({ store }), new Revocations({ store })];
    const nodeA = createTokenVerifier({ secret, clockToleranceS: 5, isRevoked: a.isRevoked });
    const nodeB = createTokenVerifier({ secret, clockToleranceS: 5, isRevoked: b.isRevoked });
    const token = await mintToken({ sub: 'u1', tid: 'acme', role: 'editor', ttlS: 60, secret });
    const principal = await nodeB.verify(token);
    await a.revoke(principal);
    await expect(nodeA.verify(token)).rejects.toMatchObject({ code: 'token_revoked' });
    await expect(nodeB.verify(token)).rejects.toMatchObject({ code: 'token_revoked' });
  });
});
