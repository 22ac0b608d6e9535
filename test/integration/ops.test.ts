import { describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import { client, eventually, request, startNode } from '../harness/node.js';

const PUBLISH_KEY = 'ops-test-publish-key-0123456789';

describe('operations', () => {
  it('serves /health, /ready and /metrics with the documented metrics', async () => {
    const node = await startNode({ PUBLISH_API_KEY: PUBLISH_KEY });
    try {
      expect((await api(node.url, 'GET', '/health')).body).toMatchObject({ status: 'ok' });
      expect((await api(node.url, 'GET', '/ready')).status).toBe(200);
      const s = await client(node.url, { token: await token({ sub: 'm', tid: 'acme' }) });
      await request(s, 'subscribe', { room: 'tenant' });
      const m = await api<string>(node.url, 'GET', '/metrics');
      for (const name of [
        'ws_connections_active',
        'ws_events_emitted_total',
        'ws_limit_refusals_total',
        'http_limit_refusals_total',
        'ws_event_fanout_seconds',
        'http_request_duration_seconds',
        'db_query_duration_seconds',
        'process_cpu_seconds_total',
      ]) {
        expect(m.body).toContain(name);
      }
      expect(m.body).toMatch(/ws_connections_active\{[^}]*\} 1/);
      // Group commit: the three transitions are the only writes through it here (creating a workflow
      // or a process is not batched), so exactly 3 batched writes. How many transactions carried
      // them depends on when each request reached the store (one batch commits at a time, and a write
      // arriving meanwhile waits for the next one): 1 to 3, not a fixed number.
      const admin = await token({ sub: 'a', tid: 'acme', role: 'admin' });
      const wf = await api<{ data: { id: string } }>(node.url, 'POST', '/api/workflows', {
        token: admin,
        body: { name: 'W', stages: ['a', 'b'], transitions: { a: ['b'], b: ['a'] } },
      });
      const procs = await Promise.all(
        [1, 2, 3].map((n) =>
          api<{ data: { id: string } }>(node.url, 'POST', '/api/processes', {
            token: admin,
            body: { workflowId: wf.body.data.id, title: `p${n}` },
          }),
        ),
      );
      const moved = await Promise.all(
        procs.map((p) => api(node.url, 'POST', `/api/processes/${p.body.data.id}/transition`, { token: admin, body: { to: 'b' } })),
      );
      expect(moved.map((r) => r.status)).toEqual([200, 200, 200]);
      const counter = async (name: string) => {
        const body = (await api<string>(node.url, 'GET', '/metrics')).body;
        return Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'm').exec(body)?.[1] ?? Number.NaN);
      };
      // The counters follow the store once a second: waited for, not slept on. Both are copied in the
      // same poll, so once the 3 writes are counted their batches are too.
      await eventually(async () => expect(await counter('db_batched_writes_total')).toBe(3));
      const batches = await counter('db_write_batches_total');
      expect(batches).toBeGreaterThanOrEqual(1);
      expect(batches).toBeLessThanOrEqual(3);
      // Writes submitted in the same tick share a batch: a published batch for three tenants is three
      // group-commit items in one transaction, exactly.
      const published = await api(node.url, 'POST', '/api/publish', {
        token: PUBLISH_KEY,
        body: { events: ['acme', 'globex', 'initech'].map((tenant) => ({ tenant, room: 'tenant', type: 'ops-test', data: {} })) },
      });
      expect(published.status).toBe(201);
      await eventually(async () => expect(await counter('db_batched_writes_total')).toBe(6));
      expect(await counter('db_write_batches_total')).toBe(batches + 1);
      // Created at start: the current month and three ahead.
      expect(m.body).toMatch(/db_event_partitions_ahead\{[^}]*\} 3/);
      s.close();
    } finally {
      await node.close();
    }
  });

  it('on shutdown tells clients to reconnect, then stops serving', async () => {
    const node = await startNode();
    const s = await client(node.url, { token: await token({ sub: 'd', tid: 'acme' }) });
    const told = new Promise<{ reason: string; nodeId: string }>((resolve) => s.once('server:reconnect', resolve));
    const stopping = node.close();
    expect(await told).toEqual({ reason: 'shutdown', nodeId: node.config.nodeId });
    await stopping;
    // Nothing listens on the port any more: the connection is refused, not answered with an error.
    await expect(fetch(`${node.url}/health`)).rejects.toMatchObject({ message: 'fetch failed', cause: { code: 'ECONNREFUSED' } });
    s.close();
  });
});
