import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard } from '../../scripts/topology/fixtures.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { SqlStore } from '../../server/store/index.js';
import { startNode } from '../harness/node.js';

/**
 * A hot standby cancels the queries that stand in the way of replaying the primary's WAL once
 * max_standby_streaming_delay has passed ("canceling statement due to conflict with recovery",
 * SQLSTATE 40001): a busy primary vacuuming, or taking a table lock, does it to long replica reads
 * every day. A read the replica cancelled must be served by the primary, never answered 500.
 */
describe('replica reads cancelled by recovery conflicts', () => {
  let pg: PostgresHandle;
  let node: FluxoNode;

  beforeAll(async () => {
    pg = await startPostgres({ replica: true });
    // Cancel at once instead of after 30 s: every replayed lock then cancels the reads it meets.
    const replica = postgres(pg.replicaUrl!, { max: 1, onnotice: () => {} });
    await replica`ALTER SYSTEM SET max_standby_streaming_delay = 0`;
    await replica`SELECT pg_reload_conf()`;
    await replica.end();
    node = await startNode({
      DATABASE_URL: pg.url,
      DATABASE_REPLICA_URLS: pg.replicaUrl!,
      MIGRATE_ON_START: 'true',
      RATE_LIMITS: 'http:write=100000/1,http:read=100000/1',
    });
  });
  afterAll(async () => {
    await node?.close();
    await pg?.stop();
  });

  it('are answered from the primary, and the replica stays in use', async () => {
    const admin = await token({ sub: 'rc-admin', tid: 'acme', role: 'admin' });
    // Reads of a user who has not written go to the replica (no read-your-writes window).
    const viewer = await token({ sub: 'rc-viewer', tid: 'acme', role: 'viewer' });
    const wf = await createBoard(node.url, admin);
    const primary = postgres(pg.url, { max: 1, onnotice: () => {} });
    const replica = postgres(pg.replicaUrl!, { max: 1, onnotice: () => {} });
    const conflicts = async () =>
      Number(
        (
          await replica`SELECT confl_lock + confl_snapshot + confl_bufferpin + confl_deadlock AS n FROM pg_stat_database_conflicts WHERE datname = current_database()`
        )[0]!.n,
      );
    // A board large enough that counting it (total=true) takes a while on the replica.
    await primary`INSERT INTO processes (tenant_id, id, workflow_id, title, stage, version, created_at, updated_at)
      SELECT 'acme', 'rc-' || g, ${wf.id}, 'card', 'todo', 1, now(), now() FROM generate_series(1, 20000) g`;

    let locking = true;
    const locker = (async () => {
      while (locking) {
        await primary.begin((tx) => tx`LOCK TABLE processes IN ACCESS EXCLUSIVE MODE`);
        await new Promise((r) => setTimeout(r, 5)); // pacing: leave the replica time to start reads
      }
    })();
    const statuses: Record<string, number> = {};
    const bodies: string[] = [];
    const store = node.store as SqlStore;
    const before = { ...store.stats };
    const startConflicts = await conflicts();
    const until = Date.now() + 60_000;
    try {
      // Until the replica has cancelled a few reads (whatever the machine's speed), or a minute.
      while ((await conflicts()) - startConflicts < 3 && Date.now() < until) {
        for (let i = 0; i < 10; i++) {
          const r = await api(node.url, 'GET', `/api/processes?workflowId=${wf.id}&total=true&limit=500`, { token: viewer });
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          if (r.status !== 200) bodies.push(JSON.stringify(r.body).slice(0, 200));
        }
      }
    } finally {
      locking = false;
      await locker;
    }
    const cancelled = (await conflicts()) - startConflicts;
    await primary.end();
    await replica.end();
    expect(cancelled, 'the replica cancelled no read within a minute: the fault was not injected').toBeGreaterThanOrEqual(3);
    expect(Object.keys(statuses), bodies.join('\n')).toEqual(['200']);
    expect(store.stats.replicaFallbacks).toBeGreaterThan(before.replicaFallbacks);
    // Not skipped for a while as an unreachable replica is: it served reads between the conflicts.
    const served = store.stats.replicaReads - before.replicaReads;
    expect(served).toBeGreaterThan(store.stats.replicaFallbacks - before.replicaFallbacks);
  });
});
