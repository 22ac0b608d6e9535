import { describe, expect, it } from 'vitest';
import { api, client, eventually, request, startNode, token } from '../harness/node.js';

describe('operations', () => {
  it('serves /health, /ready and /metrics with the documented metrics', async () => {
    const node = await startNode();
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
      // Group commit: three transitions issued at once are counted as writes, in fewer transactions.
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
      // The counters follow the store once a second: waited for, not slept on.
      await eventually(async () => expect(await counter('db_batched_writes_total')).toBeGreaterThanOrEqual(3));
      expect(await counter('db_write_batches_total')).toBeGreaterThanOrEqual(1);
      // Created at start: the current month and three ahead.
      expect(m.body).toMatch(/db_event_partitions_ahead\{[^}]*\} 3/);
      s.close();
    } finally {
      await node.shutdown();
    }
  });

  it('on shutdown tells clients to reconnect, then stops serving', async () => {
    const node = await startNode();
    const s = await client(node.url, { token: await token({ sub: 'd', tid: 'acme' }) });
    const told = new Promise<{ reason: string; nodeId: string }>((resolve) => s.once('server:reconnect', resolve));
    const stopping = node.shutdown();
    expect(await told).toEqual({ reason: 'shutdown', nodeId: node.config.nodeId });
    await stopping;
    await expect(fetch(`${node.url}/health`)).rejects.toThrow();
    s.close();
  });
});
