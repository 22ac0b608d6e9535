import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { AppError } from '../../server/errors.js';
import { createStore, type SqlStore } from '../../server/store/index.js';

/** Retries until `ok` (errors count as not yet: the replica may not have replayed the migration). */
async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (ok(v) || Date.now() > until) return v;
    } catch (err) {
      if (Date.now() > until) throw err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('store with a streaming replica', () => {
  let pg: PostgresHandle;
  let store: SqlStore;

  beforeAll(async () => {
    pg = await startPostgres({ replica: true });
    store = await createStore({ databaseUrl: pg.url, replicaUrls: [pg.replicaUrl!], connectTimeoutS: 2 });
    await store.migrate();
    await store.ensurePartitions(new Date());
  });
  afterAll(async () => {
    await store?.close();
    await pg?.stop();
  });

  it('serves lagging reads from the replica and fresh ones from the primary', async () => {
    const wf = await store.createWorkflow('t1', { name: 'W', stages: ['a', 'b'], transitions: { a: ['b'] } });
    const listed = await eventually(
      () => store.listWorkflows('t1'),
      (l) => l.length === 1,
    );
    expect(listed).toEqual([wf]);
    expect(await store.readIsFromReplica('t1')).toBe(true);
    expect(await store.readIsFromReplica('t1', { fresh: true })).toBe(false);
    const before = { ...store.stats };
    await store.listProcesses('t1', { limit: 10 });
    expect(store.stats.replicaReads).toBe(before.replicaReads + 1);
    await store.getWorkflow('t1', wf.id, { fresh: true });
    expect(store.stats.primaryReads).toBe(before.primaryReads + 1);
  });

  it('skips a replica lagging past replicaMaxLagMs and returns to it once it catches up', async () => {
    const lagged = await createStore({ databaseUrl: pg.url, replicaUrls: [pg.replicaUrl!], replicaMaxLagMs: 300, lagProbeMs: 100 });
    const replica = postgres(pg.replicaUrl!, { max: 1, onnotice: () => {} });
    try {
      await eventually(
        () => lagged.readIsFromReplica('t4'),
        (r) => r,
      );
      // Freeze replay on the replica while the primary keeps writing: the replica falls behind.
      await replica`SELECT pg_wal_replay_pause()`;
      for (let i = 0; i < 5; i++) {
        await lagged.createWorkflow('t4', { name: `L${i}`, stages: ['a'], transitions: {} });
        await new Promise((r) => setTimeout(r, 150));
      }
      await eventually(
        () => lagged.readIsFromReplica('t4'),
        (r) => !r,
      );
      expect(await lagged.readIsFromReplica('t4')).toBe(false);
      expect(lagged.replicaLag()[0]?.seconds).toBeGreaterThan(0.3);
      await replica`SELECT pg_wal_replay_resume()`;
      expect(
        await eventually(
          () => lagged.readIsFromReplica('t4'),
          (r) => r,
        ),
      ).toBe(true);
      expect(lagged.replicaLag()[0]?.seconds).toBeLessThanOrEqual(0.3);
    } finally {
      await replica`SELECT pg_wal_replay_resume()`.catch(() => {});
      await replica.end();
      await lagged.close();
    }
  });

  it('falls back to the primary when the replica is down', async () => {
    await pg.stopReplica();
    const wfs = await store.listWorkflows('t1');
    expect(wfs).toHaveLength(1);
    expect(store.stats.replicaFallbacks).toBeGreaterThanOrEqual(1);
    expect(await store.readIsFromReplica('t1')).toBe(false);
    await pg.startReplica();
  });

  it('reports store_unavailable quickly when the primary is down', async () => {
    await pg.stopPrimary();
    try {
      const t = Date.now();
      const err = await store.createWorkflow('t1', { name: 'X', stages: ['a'], transitions: {} }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('store_unavailable');
      expect(Date.now() - t).toBeLessThan(5_000);
      await expect(store.ping()).rejects.toMatchObject({ code: 'store_unavailable' });
    } finally {
      await pg.startPrimary();
    }
    await eventually(
      () =>
        store.ping().then(
          () => true,
          () => false,
        ),
      (ok) => ok,
      10_000,
    );
    await store.ping();
  });
});
