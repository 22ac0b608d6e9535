import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard } from '../../scripts/topology/fixtures.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { REVOCATION_POLL_MS } from '../../server/auth/revocations.js';
import type { SqlStore } from '../../server/store/index.js';
import { client, eventually, helloOf, startNode } from '../harness/node.js';

/**
 * Two nodes on one Postgres primary + streaming replica, without Redis: a revocation reaches the
 * other node only through its periodic read of the store (the slow path), and checking a token
 * needs no database at all.
 */
const REPLICA_MAX_LAG_MS = 1000;
/** The bound stated in server/auth/revocations.ts: poll interval + the read + replica lag (≤ REPLICA_MAX_LAG_MS, probed every second). */
const BOUND_MS = REVOCATION_POLL_MS + REPLICA_MAX_LAG_MS + 1000;

let pg: PostgresHandle;
let a: FluxoNode;
let b: FluxoNode;

beforeAll(async () => {
  pg = await startPostgres({ replica: true });
  const env = {
    DATABASE_URL: pg.url,
    DATABASE_REPLICA_URLS: pg.replicaUrl ?? '',
    REPLICA_MAX_LAG_MS: String(REPLICA_MAX_LAG_MS),
    // The tests poll with handshakes from one address.
    RATE_LIMITS: 'handshake=10000/1',
  };
  a = await startNode(env);
  b = await startNode(env);
  // Ready once each has read the revocations (the replica may still be replaying the migrations).
  for (const node of [a, b]) await eventually(async () => expect((await api(node.url, 'GET', '/ready')).status).toBe(200), 10_000, 50);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await pg?.stop();
});

/** The connect_error code of a handshake, or 'connected'. */
async function handshake(url: string, tok: string): Promise<string> {
  try {
    const s = await client(url, { token: tok });
    s.close();
    return 'connected';
  } catch (err) {
    return (err as { data?: { code?: string } }).data?.code ?? String(err);
  }
}

describe('token revocation without a per-request database read', () => {
  it('reads revocations from the replica, only the rows changed since a given time', async () => {
    const store = a.store as SqlStore;
    const before = new Date();
    await store.revokeToken('k-since', new Date(Date.now() + 60_000));
    await store.revokeToken('k-expired', new Date(Date.now() - 1000));
    const since = new Date(before.getTime() - 1);
    // The replica replays the inserts a moment later. Both checks read the same rows: two reads in a
    // row may go to different servers (a replica the lag probe thought behind sends a read to the
    // primary, the next one may go to the replica before it has received the insert).
    await eventually(async () => {
      const rows = await store.revokedSince(since);
      expect(rows.map((x) => x.key)).toEqual(['k-since']);
      expect(rows[0]?.revokedAt.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1000);
    }, 5000);
    expect(await store.revokedSince(new Date(Date.now() + 60_000))).toEqual([]);
    const replicaReads = store.stats.replicaReads;
    await store.revokedSince(null);
    expect(store.stats.replicaReads).toBe(replicaReads + 1);
  });

  it(`refuses a token revoked on node A on node B within ${BOUND_MS} ms (no Redis: B's periodic read)`, async () => {
    const tok = await token({ sub: 'leaver', tid: 'rev' });
    expect(await handshake(b.url, tok)).toBe('connected');
    const res = await api<{ data: { revoked: boolean } }>(a.url, 'POST', '/auth/logout', { token: tok });
    expect(res.body.data.revoked).toBe(true);
    const revokedAt = Date.now();
    expect(await handshake(a.url, tok)).toBe('token_revoked');
    await eventually(async () => expect(await handshake(b.url, tok)).toBe('token_revoked'), BOUND_MS, 50);
    const took = Date.now() - revokedAt;
    expect(took).toBeLessThanOrEqual(BOUND_MS);
    expect((await api(b.url, 'GET', '/api/me', { token: tok })).status).toBe(401);
  });

  it('keeps accepting handshakes and authenticated reads (from the replica) while the primary is down', async () => {
    const admin = await token({ sub: 'boss', tid: 'outage', role: 'admin' });
    const board = await createBoard(a.url, admin);
    // Another user than the writer: its reads are not pinned to the primary (read-your-writes).
    const reader = await token({ sub: 'reader', tid: 'outage' });
    await eventually(async () => {
      const list = await api<{ data: { id: string }[] }>(b.url, 'GET', '/api/workflows', { token: reader });
      expect(list.body.data?.map((w) => w.id)).toContain(board.id);
    }, 5000);
    const revoked = await token({ sub: 'gone', tid: 'outage' });
    const out = await api<{ data: { revoked: boolean } }>(a.url, 'POST', '/auth/logout', { token: revoked });
    expect(out.body).toEqual({ data: { revoked: true } });
    await eventually(async () => expect(await handshake(b.url, revoked)).toBe('token_revoked'), BOUND_MS, 50);

    await pg.stopPrimary();
    try {
      for (const node of [a, b]) {
        const s = await client(node.url, { token: await token({ sub: 'newcomer', tid: 'outage' }) });
        expect((await helloOf(s)).userId).toBe('newcomer');
        s.close();
        const me = await api<{ data: { userId: string } }>(node.url, 'GET', '/api/me', { token: reader });
        expect(me.status).toBe(200);
        const list = await api<{ data: { id: string }[] }>(node.url, 'GET', '/api/workflows', { token: reader });
        expect(list.status).toBe(200);
        expect(list.body.data.map((w) => w.id)).toContain(board.id);
        // What was revoked before the outage stays revoked.
        expect(await handshake(node.url, revoked)).toBe('token_revoked');
        expect((await api(node.url, 'GET', '/api/me', { token: revoked })).status).toBe(401);
      }
      // Writes need the primary: a revocation cannot be made now, and says so.
      expect((await api(a.url, 'POST', '/auth/logout', { token: reader })).status).toBe(503);
    } finally {
      await pg.startPrimary();
    }
  });
});
