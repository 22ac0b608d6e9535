import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freezePostgres } from '../../scripts/topology/freeze.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { createStore, type SqlStore } from '../../server/store/index.js';
import type { Workflow } from '../../shared/protocol.js';
import { eventually } from '../harness/node.js';

/** DB_REPLICA_TIMEOUT_MS of the store under test. */
const REPLICA_TIMEOUT_MS = 300;
/** A read slower than this did not fall back "at once". */
const PROMPT_MS = REPLICA_TIMEOUT_MS + 500;

/** Lists the tenant's workflows and how long that took; gives up (as a failure) after 3 s. */
async function timedList(store: SqlStore, tenant: string): Promise<{ list: Workflow[] | 'hung'; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => resolve('hung'), 3000);
  });
  const list = await Promise.race([store.listWorkflows(tenant), hung]);
  clearTimeout(timer);
  return { list, ms: performance.now() - started };
}

describe('a replica that stops answering is skipped at once', () => {
  let pg: PostgresHandle;
  let store: SqlStore;
  let wf: Workflow;

  beforeAll(async () => {
    pg = await startPostgres({ replica: true });
    store = await createStore({
      databaseUrl: pg.url,
      replicaUrls: [pg.replicaUrl!],
      replicaMaxLagMs: 5000,
      lagProbeMs: 200,
      replicaTimeoutMs: REPLICA_TIMEOUT_MS,
    });
    await store.migrate();
    await store.ensurePartitions(new Date());
    wf = await store.createWorkflow('t1', { name: 'W', stages: ['a', 'b'], transitions: { a: ['b'] } });
  });
  afterAll(async () => {
    await store?.close();
    await pg?.stop();
  });

  /** Until list reads are served by the replica again, with the workflow replayed. */
  async function replicaServes(ms = 10_000): Promise<void> {
    await eventually(
      async () => {
        expect(await store.readIsFromReplica('t1')).toBe(true);
        expect(await store.listWorkflows('t1')).toEqual([wf]);
      },
      ms,
      50,
    );
  }

  it('answers from the primary while the replica is frozen, and uses it again after', async () => {
    await replicaServes();
    const frozen = await freezePostgres(pg.replicaUrl!);
    const fallbacks = store.stats.replicaFallbacks;
    try {
      for (let i = 0; i < 5; i++) {
        const { list, ms } = await timedList(store, 't1');
        expect(list).toEqual([wf]);
        expect(ms).toBeLessThan(PROMPT_MS);
      }
      expect(store.stats.replicaFallbacks).toBeGreaterThan(fallbacks);
      // Marked down: the next reads do not even try it.
      expect(await store.readIsFromReplica('t1')).toBe(false);
    } finally {
      frozen.thaw();
    }
    await replicaServes();
  });

  it('reads stay prompt through a replica restart', { timeout: 60_000 }, async () => {
    await replicaServes();
    const slow: number[] = [];
    /** Reads (paced) for `ms`, noting every one that was not prompt. */
    const readFor = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const { list, ms: took } = await timedList(store, 't1');
        expect(list).toEqual([wf]);
        if (took >= PROMPT_MS) slow.push(Math.round(took));
        await new Promise((r) => setTimeout(r, 50)); // pacing, not waiting for anything
      }
    };
    await pg.stopReplica();
    try {
      // Down for longer than the replica's cool-down: reads and lag probes keep trying it, and the
      // driver's reconnect back-off grows.
      await readFor(7000);
    } finally {
      await pg.startReplica();
    }
    // Right after the restart the replica's pool reconnects (or still backs off): reads stay prompt.
    await readFor(8000);
    expect(slow).toEqual([]);
    await replicaServes();
  });
});
