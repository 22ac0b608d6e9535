import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { Process } from '../../shared/protocol.js';
import { type Client, client, collect, eventually, request, startNode } from '../harness/node.js';

// A write whose COMMIT is still running when its deadline passes is answered store_unavailable, and
// may commit after all: a COMMIT in flight cannot be recalled (a stalled WAL flush, a synchronous
// standby that does not answer). Its events are then in the log; the node must still send them,
// or the rooms' subscribers would not see them before each room's next event.

/** DB_WRITE_TIMEOUT_MS of the node: the COMMIT below outlasts it, and stays under statement_timeout (5 s). */
const WRITE_TIMEOUT_MS = 1000;
const COMMIT_SLEEP_S = 2.5;
const TENANT = 'late';

/**
 * A deferred constraint trigger on `tenant_cursors` (every write's stamp upserts its tenant's row)
 * runs at COMMIT, and sleeps there while `slow_commit.enabled` is set: what a slow WAL flush looks
 * like to the node, made to happen on cue.
 */
const SLOW_COMMIT = `
  CREATE TABLE slow_commit (enabled boolean NOT NULL);
  INSERT INTO slow_commit VALUES (false);
  CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF (SELECT enabled FROM slow_commit) THEN PERFORM pg_sleep(${COMMIT_SLEEP_S}); END IF;
    RETURN NULL;
  END $$;
  CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT OR UPDATE ON tenant_cursors
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();`;

describe('a write that commits after its deadline answered store_unavailable', () => {
  let pg: PostgresHandle;
  let node: FluxoNode;
  let sql: postgres.Sql;
  let admin: string;
  let watcher: Client | undefined;

  beforeAll(async () => {
    pg = await startPostgres();
    node = await startNode({
      DATABASE_URL: pg.url,
      DB_WRITE_TIMEOUT_MS: String(WRITE_TIMEOUT_MS),
      RATE_LIMITS: 'http:write=100000/1,http:read=100000/1,process:transition=100000/1',
    });
    sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    await sql.unsafe(SLOW_COMMIT);
    admin = await token({ sub: 'late-admin', tid: TENANT, role: 'admin' });
  });
  afterAll(async () => {
    watcher?.close();
    await node?.close();
    await sql?.end();
    await pg?.stop();
  });

  it('is sent to its rooms once it committed, with no later write to carry it', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    watcher = await client(node.url, { token: admin });
    const seen = collect(watcher);
    const ack = await request(watcher, 'subscribe', { room: `process:${proc.id}` });
    expect(ack).toHaveProperty('data');

    await sql`UPDATE slow_commit SET enabled = true`;
    const started = Date.now();
    const answer = await api<{ error: { code: string } }>(node.url, 'POST', `/api/processes/${proc.id}/transition`, {
      token: admin,
      body: { to: 'doing' },
    });
    await sql`UPDATE slow_commit SET enabled = false`;
    expect(answer.status).toBe(503);
    expect(answer.body.error.code).toBe('store_unavailable');
    expect(Date.now() - started).toBeLessThan(COMMIT_SLEEP_S * 1000);

    // It committed after all …
    await eventually(async () => {
      const now = await api<{ data: Process }>(node.url, 'GET', `/api/processes/${proc.id}`, { token: admin });
      expect(now.body.data).toMatchObject({ stage: 'doing', version: 2 });
    });
    // … and its event reaches the room's subscriber, though nothing else is written.
    await eventually(() =>
      expect(seen.events).toContainEqual(
        expect.objectContaining({ type: 'process.transitioned', processId: proc.id, toStage: 'doing', version: 2 }),
      ),
    );
    expect(await lateEvents()).toBe(1);
  });

  it('the same for a process created outside group commit', async () => {
    const wf = await createBoard(node.url, admin);
    const before = await lateEvents();
    const sub = await client(node.url, { token: admin });
    try {
      const seen = collect(sub);
      expect(await request(sub, 'subscribe', { room: `workflow:${wf.id}` })).toHaveProperty('data');
      await sql`UPDATE slow_commit SET enabled = true`;
      const answer = await api<{ error: { code: string } }>(node.url, 'POST', '/api/processes', {
        token: admin,
        body: { workflowId: wf.id, title: 'Late card' },
      });
      await sql`UPDATE slow_commit SET enabled = false`;
      expect(answer.status).toBe(503);
      expect(answer.body.error.code).toBe('store_unavailable');
      await eventually(() =>
        expect(seen.events).toContainEqual(expect.objectContaining({ type: 'process.created', workflowId: wf.id, toStage: 'todo' })),
      );
      const created = seen.events.find((e) => e.type === 'process.created')!;
      const stored = await api<{ data: Process }>(node.url, 'GET', `/api/processes/${created.processId}`, { token: admin });
      expect(stored.body.data).toMatchObject({ title: 'Late card', workflowId: wf.id, version: 1 });
      expect(await lateEvents()).toBe(before + 1);
    } finally {
      sub.close();
    }
  });

  async function lateEvents(): Promise<number> {
    const metrics = await fetch(`${node.url}/metrics`).then((r) => r.text());
    const m = /^db_late_commit_events_total(?:\{[^}]*\})? (\d+)$/m.exec(metrics);
    if (!m) throw new Error('db_late_commit_events_total is not on /metrics');
    return Number(m[1]);
  }
});
