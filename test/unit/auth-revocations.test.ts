import { describe, expect, it, vi } from 'vitest';
import { type RevocationStore, Revocations, type RevokedKey } from '../../server/auth/revocations.js';

/** The store's rows; `revokedSince` answers like SqlStore (unexpired, stamped after `since`). */
function fakeStore(clock: () => number = Date.now) {
  const rows = new Map<string, RevokedKey>();
  let down = false;
  const store: RevocationStore & { rows: Map<string, RevokedKey>; setDown(d: boolean): void } = {
    rows,
    setDown: (d) => {
      down = d;
    },
    revokeToken: vi.fn(async (key: string, expiresAt: Date) => {
      if (down) throw new Error('db down');
      rows.set(key, { key, expiresAt, revokedAt: new Date(clock()) });
    }),
    revokedSince: vi.fn(async (since: Date | null) => {
      if (down) throw new Error('db down');
      return [...rows.values()].filter((r) => r.expiresAt.getTime() > clock() && (since === null || r.revokedAt > since));
    }),
  };
  return store;
}

const inAMinute = () => Math.floor(Date.now() / 1000) + 60;

describe('Revocations', () => {
  it('writes to the store before answering from memory', async () => {
    const store = fakeStore();
    const r = new Revocations({ store, graceMs: 0 });
    await r.refresh();
    const exp = inAMinute();
    await r.revoke({ revocationKey: 'j1', exp });
    expect(store.rows.get('j1')?.expiresAt.getTime()).toBe(exp * 1000);
    expect(r.isRevoked('j1')).toBe(true);
    expect(r.isRevoked('other')).toBe(false);
  });

  it('does not remember a revocation when the store write fails', async () => {
    const store = fakeStore();
    const r = new Revocations({ store });
    await r.refresh();
    store.setDown(true);
    await expect(r.revoke({ revocationKey: 'j1', exp: inAMinute() })).rejects.toThrow('db down');
    expect(r.size).toBe(0);
  });

  it('refuses to answer before the first read succeeded, then answers from memory', async () => {
    const store = fakeStore();
    store.rows.set('old', { key: 'old', expiresAt: new Date(Date.now() + 60_000), revokedAt: new Date() });
    const r = new Revocations({ store });
    expect(r.loaded).toBe(false);
    expect(() => r.isRevoked('old')).toThrow(expect.objectContaining({ code: 'store_unavailable' }));
    store.setDown(true);
    await expect(r.refresh()).rejects.toThrow('db down');
    expect(r.loaded).toBe(false);
    store.setDown(false);
    await r.refresh();
    expect(r.loaded).toBe(true);
    expect(r.isRevoked('old')).toBe(true);
    expect(vi.mocked(store.revokedSince)).toHaveBeenLastCalledWith(null);
  });

  it('checks tokens without the store: no read per lookup, and the set stays while the store is down', async () => {
    const store = fakeStore();
    const r = new Revocations({ store });
    await r.refresh();
    await r.revoke({ revocationKey: 'j1', exp: inAMinute() });
    const reads = vi.mocked(store.revokedSince).mock.calls.length;
    store.setDown(true);
    for (let i = 0; i < 100; i++) {
      expect(r.isRevoked('j1')).toBe(true);
      expect(r.isRevoked(`fresh${i}`)).toBe(false);
    }
    await expect(r.refresh()).rejects.toThrow('db down');
    expect(r.isRevoked('j1')).toBe(true);
    expect(vi.mocked(store.revokedSince).mock.calls.length).toBe(reads + 1);
  });

  it('sees a revocation made by another node at its next read, asking only for rows since the newest it saw (minus the overlap)', async () => {
    const store = fakeStore();
    const a = new Revocations({ store });
    const b = new Revocations({ store, overlapMs: 5000 });
    await b.refresh();
    expect(b.isRevoked('j1')).toBe(false);
    await a.revoke({ revocationKey: 'j1', exp: inAMinute() });
    expect(b.isRevoked('j1')).toBe(false);
    await b.refresh();
    expect(b.isRevoked('j1')).toBe(true);
    const stamped = store.rows.get('j1')?.revokedAt.getTime() ?? 0;
    await b.refresh();
    expect(vi.mocked(store.revokedSince)).toHaveBeenLastCalledWith(new Date(stamped - 5000));
  });

  it('does not skip a row stamped before the newest one seen but committed after it (within the overlap)', async () => {
    const store = fakeStore();
    const r = new Revocations({ store, overlapMs: 1000 });
    const t = Date.now();
    store.rows.set('late', { key: 'late', expiresAt: new Date(t + 60_000), revokedAt: new Date(t) });
    await r.refresh();
    // Stamped 500 ms earlier, visible only now (its transaction committed late).
    store.rows.set('slow', { key: 'slow', expiresAt: new Date(t + 60_000), revokedAt: new Date(t - 500) });
    await r.refresh();
    expect(r.isRevoked('slow')).toBe(true);
  });

  it('polls every pollMs once started, until stopped', async () => {
    vi.useFakeTimers();
    try {
      const store = fakeStore();
      const r = new Revocations({ store, pollMs: 1000 });
      expect(await r.start()).toBe(true);
      expect(store.revokedSince).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(3000);
      expect(store.revokedSince).toHaveBeenCalledTimes(4);
      await r.stop();
      await vi.advanceTimersByTimeAsync(3000);
      expect(store.revokedSince).toHaveBeenCalledTimes(4);
    } finally {
      vi.useRealTimers();
    }
  });

  it('starts not loaded when the store is unreachable, and becomes loaded at a later poll', async () => {
    vi.useFakeTimers();
    try {
      const store = fakeStore();
      store.setDown(true);
      const warn = vi.fn();
      const r = new Revocations({ store, pollMs: 1000, logger: { info() {}, warn } });
      expect(await r.start()).toBe(false);
      expect(warn).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(2000);
      expect(r.loaded).toBe(false);
      expect(warn).toHaveBeenCalledTimes(1); // not once per poll
      store.setDown(false);
      await vi.advanceTimersByTimeAsync(1000);
      expect(r.loaded).toBe(true);
      await r.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('takes pushed revocations (markRevoked) and forgets them after expiry', async () => {
    let now = 1_000_000;
    const store = fakeStore(() => now);
    const r = new Revocations({ store, now: () => now });
    await r.refresh();
    r.markRevoked('j2', now + 1000);
    expect(r.isRevoked('j2')).toBe(true);
    now += 1001;
    expect(r.isRevoked('j2')).toBe(false);
    r.markRevoked('old', now - 1);
    expect(r.size).toBe(0);
  });

  it('prunes expired keys as new ones arrive', () => {
    let now = 1_000_000;
    const r = new Revocations({ store: fakeStore(() => now), now: () => now });
    for (let i = 0; i < 100; i++) r.markRevoked(`k${i}`, now + 100);
    now += 20_000;
    r.markRevoked('fresh', now + 100);
    expect(r.size).toBe(1);
  });
});

describe('Revocations with the verifier', () => {
  it('refuses a token on every node once one node revokes it (the other at its next read)', async () => {
    const { createTokenVerifier } = await import('../../server/auth/verifier.js');
    const { mintToken } = await import('../../server/auth/mint.js');
    const secret = 'x'.repeat(40);
    const store = fakeStore();
    const [a, b] = [new Revocations({ store }), new Revocations({ store })];
    await Promise.all([a.refresh(), b.refresh()]);
    const nodeA = createTokenVerifier({ secret, clockToleranceS: 5, isRevoked: a.isRevoked });
    const nodeB = createTokenVerifier({ secret, clockToleranceS: 5, isRevoked: b.isRevoked });
    const token = await mintToken({ sub: 'u1', tid: 'acme', role: 'editor', ttlS: 60, secret });
    const principal = await nodeB.verify(token);
    await a.revoke(principal);
    await expect(nodeA.verify(token)).rejects.toMatchObject({ code: 'token_revoked' });
    await b.refresh();
    await expect(nodeB.verify(token)).rejects.toMatchObject({ code: 'token_revoked' });
  });

  it('answers store_unavailable, not "valid", before the revocations are loaded', async () => {
    const { createTokenVerifier } = await import('../../server/auth/verifier.js');
    const { mintToken } = await import('../../server/auth/mint.js');
    const secret = 'x'.repeat(40);
    const r = new Revocations({ store: fakeStore() });
    const v = createTokenVerifier({ secret, clockToleranceS: 5, isRevoked: r.isRevoked });
    const token = await mintToken({ sub: 'u1', tid: 'acme', role: 'editor', ttlS: 60, secret });
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'store_unavailable' });
  });
});
