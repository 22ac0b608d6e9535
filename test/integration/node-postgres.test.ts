import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { Process, TransitionResult } from '../../shared/protocol.js';
import { client, collect, eventually, request, startNode } from '../harness/node.js';

/** The same node, on a real Postgres 15 primary with a streaming replica instead of PGlite. */
describe('a node on Postgres with a replica', () => {
  let pg: PostgresHandle;
  let node: FluxoNode;
  let admin: string;

  beforeAll(async () => {
    pg = await startPostgres({ replica: true });
    node = await startNode({
      DATABASE_URL: pg.url,
      DATABASE_REPLICA_URLS: pg.replicaUrl!,
      MIGRATE_ON_START: 'true',
      RATE_LIMITS: 'http:write=10000/1,http:read=10000/1',
    });
    admin = await token({ sub: 'pg-admin', tid: 'acme', role: 'admin' });
  });
  afterAll(async () => {
    await node?.close();
    await pg?.stop();
  });

  it('persists a transition and delivers its event after the commit', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    const s = await client(node.url, { token: admin });
    try {
      const seen = collect(s);
      await request(s, 'subscribe', { room: `workflow:${wf.id}` });
      const r = await api<{ data: TransitionResult }>(node.url, 'POST', `/api/processes/${proc.id}/transition`, {
        token: admin,
        body: { to: 'doing' },
      });
      expect(r.status).toBe(200);
      await eventually(() => expect(seen.events.map((e) => e.id)).toContain(r.body.data.event.id));
      const log = await api<{ data: { type: string }[] }>(node.url, 'GET', `/api/events?room=process:${proc.id}&after=0`, { token: admin });
      expect(log.body.data.map((e) => e.type)).toEqual(['process.created', 'process.transitioned']);
    } finally {
      s.close();
    }
  });

  it('exports the replica lag as db_replica_lag_seconds', async () => {
    await eventually(async () => {
      const m = await api<string>(node.url, 'GET', '/metrics');
      expect(m.body).toMatch(/db_replica_lag_seconds\{[^}]*replica="0"[^}]*\} \d/);
    });
  });

  it('lets a user read their own writes at once, even though lists come from the replica', async () => {
    const wf = await createBoard(node.url, admin);
    // Create and list straight away, many times: a lagging replica read would miss the new process.
    for (let i = 0; i < 20; i++) {
      const proc = await createProcess(node.url, admin, wf.id, `card ${i}`);
      const list = await api<{ data: Process[] }>(node.url, 'GET', `/api/processes?workflowId=${wf.id}&limit=100`, { token: admin });
      expect(list.body.data.map((p) => p.id)).toContain(proc.id);
    }
  });

  it('pages through a filtered process list with nextCursor', async () => {
    const wf = await createBoard(node.url, admin);
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) ids.add((await createProcess(node.url, admin, wf.id, `p${i}`)).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `/api/processes?workflowId=${wf.id}&stage=todo&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page: { status: number; body: { data: Process[]; nextCursor: string | null } } = await api(node.url, 'GET', q, {
        token: admin,
      });
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(3);
      seen.push(...page.body.data.map((p) => p.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(new Set(seen)).toEqual(ids);
    expect(seen).toHaveLength(7);
  });

  it('answers writes with 503 store_unavailable fast while the primary is down, and recovers', async () => {
    const wf = await createBoard(node.url, admin);
    await pg.stopPrimary();
    try {
      const started = Date.now();
      const r = await api<{ error: { code: string } }>(node.url, 'POST', '/api/processes', {
        token: admin,
        body: { workflowId: wf.id, title: 'x' },
      });
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('store_unavailable');
      expect(Date.now() - started).toBeLessThan(8000);
      expect((await api(node.url, 'GET', '/ready')).status).toBe(503);
    } finally {
      await pg.startPrimary();
    }
    await eventually(
      async () =>
        expect((await api(node.url, 'POST', '/api/processes', { token: admin, body: { workflowId: wf.id, title: 'y' } })).status).toBe(201),
      15_000,
      250,
    );
  });
});
