import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { type RedisInstance, startRedis } from '../../scripts/topology/redis.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { client, eventually, request, startNode } from '../harness/node.js';
import { alertRules, dashboard, dashboardQueries, exportedNames, metricNames, SCRAPE_SERIES } from '../harness/promql.js';

/**
 * Every metric the Grafana dashboard and the alert rules name is exported by a live node — one with
 * Redis and a Postgres replica, so that the redis_* and db_replica_* series exist — as a sample, not
 * only a `# TYPE` line: a rule on a name that never has a sample never fires. And the replica's
 * state: `db_replica_up` 0 and no lag sample while it is down, both back once it answers again.
 */
describe('monitoring: the metrics the dashboard and the alerts use', () => {
  let redis: RedisInstance;
  let pg: PostgresHandle;
  let node: FluxoNode;

  const scrape = async () => (await api<string>(node.url, 'GET', '/metrics')).body;
  /** The samples of `name` whose labels include `label`. */
  const samples = (text: string, name: string, label: string) =>
    text.split('\n').filter((l) => l.startsWith(`${name}{`) && l.includes(label));

  beforeAll(async () => {
    [redis, pg] = await Promise.all([startRedis(), startPostgres({ replica: true })]);
    node = await startNode({
      DATABASE_URL: pg.url,
      DATABASE_REPLICA_URLS: pg.replicaUrl!,
      REDIS_URL: redis.url,
      // Small budgets, so that a refusal of each transport is counted.
      RATE_LIMITS: 'http:read=2/60,subscribe=2/60,http:write=10000/1',
    });
  });
  afterAll(async () => {
    await node?.close();
    await Promise.all([pg?.stop(), redis?.stop()]);
  });

  it('exports every metric named by fluxo.json and alerts.yml', async () => {
    // Traffic, so that the labelled series (by route, type, op, limit) have samples.
    const admin = await token({ sub: 'mon-admin', tid: 'acme', role: 'admin' });
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    const s = await client(node.url, { token: admin });
    try {
      const subscribes = [];
      for (const room of [`workflow:${wf.id}`, 'tenant', `process:${proc.id}`]) subscribes.push(await request(s, 'subscribe', { room }));
      expect(subscribes[2]).toMatchObject({ error: { code: 'rate_limited' } });
      const moved = await api(node.url, 'POST', `/api/processes/${proc.id}/transition`, { token: admin, body: { to: 'doing' } });
      expect(moved.status).toBe(200);
      const reads = [];
      for (let i = 0; i < 3; i++) reads.push((await api(node.url, 'GET', '/api/workflows', { token: admin })).status);
      expect(reads).toEqual([200, 200, 429]);

      // Redis connections and the replica probe report within a second or two.
      await eventually(async () => {
        const text = await scrape();
        expect(samples(text, 'redis_connected', 'role="limiter"')).toHaveLength(1);
        expect(samples(text, 'db_replica_up', 'replica="0"')).toEqual([expect.stringMatching(/ 1$/)]);
        expect(samples(text, 'db_replica_lag_seconds', 'replica="0"')).toHaveLength(1);
        expect(samples(text, 'ws_events_emitted_total', 'type=')).not.toEqual([]);
      }, 15_000);

      const exported = exportedNames(await scrape());
      const used = [
        ...dashboardQueries(dashboard()).map((q) => ({ where: `fluxo.json ${q.where}`, names: metricNames(q.expr) })),
        ...alertRules().map((r) => ({ where: `alerts.yml ${r.alert}`, names: metricNames(r.expr) })),
      ];
      // The tokenizer found names everywhere (an empty list would make this test pass vacuously).
      for (const u of used) expect(u.names, u.where).not.toEqual([]);
      const missing = used.flatMap((u) => u.names.filter((n) => !exported.has(n) && !SCRAPE_SERIES.has(n)).map((n) => `${u.where}: ${n}`));
      expect(missing).toEqual([]);
      // Spot checks of what the issue asked for.
      const all = new Set(used.flatMap((u) => u.names));
      for (const name of [
        'process_resident_memory_bytes',
        'nodejs_heap_size_used_bytes',
        'nodejs_eventloop_lag_p99_seconds',
        'db_replica_up',
        'http_limit_refusals_total',
        'ws_limit_refusals_total',
      ]) {
        expect(all.has(name), name).toBe(true);
      }
      // Each refusal counted once, under its own transport.
      const text = await scrape();
      expect(samples(text, 'ws_limit_refusals_total', 'limit="subscribe"')).toEqual([expect.stringMatching(/ 1$/)]);
      expect(samples(text, 'http_limit_refusals_total', 'limit="http:read"')).toEqual([expect.stringMatching(/ 1$/)]);
      expect(samples(text, 'http_limit_refusals_total', 'limit="subscribe"')).toEqual([]);
      expect(samples(text, 'ws_limit_refusals_total', 'limit="http:read"')).toEqual([]);
    } finally {
      s.close();
    }
  });

  it('reports a replica that stops answering as db_replica_up 0 without a lag sample, and its return', async () => {
    await pg.stopReplica('fast');
    await eventually(async () => {
      const text = await scrape();
      expect(samples(text, 'db_replica_up', 'replica="0"')).toEqual([expect.stringMatching(/ 0$/)]);
      expect(samples(text, 'db_replica_lag_seconds', 'replica="0"')).toEqual([]);
    }, 15_000);
    await pg.startReplica();
    await eventually(async () => {
      const text = await scrape();
      expect(samples(text, 'db_replica_up', 'replica="0"')).toEqual([expect.stringMatching(/ 1$/)]);
      expect(samples(text, 'db_replica_lag_seconds', 'replica="0"')).toEqual([expect.stringMatching(/ \d+(\.\d+)?(e-\d+)?$/)]);
    }, 20_000);
  });
});
