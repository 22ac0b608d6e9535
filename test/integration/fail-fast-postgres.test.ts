import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { type SpawnedNode, spawnNode } from '../../scripts/topology/cluster.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { freezePostgres } from '../../scripts/topology/freeze.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { createStore, type SqlStore } from '../../server/store/index.js';
import type { Db } from '../../server/store/sql-store.js';
import type { Process } from '../../shared/protocol.js';
import { client, eventually, request, startNode } from '../harness/node.js';

/** DB_WRITE_TIMEOUT_MS of the node under test: every answer must come within it (plus slack). */
const WRITE_TIMEOUT_MS = 1000;
const SLACK_MS = 600;
const LIMITS = 'http:write=100000/1,http:read=100000/1,process:transition=100000/1';
/** DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: how long a frozen node may hold the tenant's rows. */
const IDLE_MS = 1500;

interface Answer {
  /** -1: no answer before the client gave up. */
  status: number;
  code?: string;
  ms: number;
}

/** POST with a client-side limit, so that a hanging server fails the test quickly instead of stalling it. */
async function post(url: string, path: string, bearer: string, body: unknown, limitMs = WRITE_TIMEOUT_MS + 3000): Promise<Answer> {
  const started = performance.now();
  try {
    const res = await fetch(url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(limitMs),
    });
    const parsed = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
    return { status: res.status, code: parsed.error?.code, ms: performance.now() - started };
  } catch {
    return { status: -1, ms: performance.now() - started };
  }
}

async function readyStatus(url: string): Promise<number> {
  return fetch(`${url}/ready`, { signal: AbortSignal.timeout(3000) }).then(
    (r) => r.status,
    () => -1,
  );
}

describe('a node on Postgres fails fast and recovers alone', () => {
  let pg: PostgresHandle;
  let node: FluxoNode;
  let admin: string;

  beforeAll(async () => {
    pg = await startPostgres();
    node = await startNode({
      DATABASE_URL: pg.url,
      MIGRATE_ON_START: 'true',
      DB_WRITE_TIMEOUT_MS: String(WRITE_TIMEOUT_MS),
      DB_LOCK_TIMEOUT_MS: '500',
      DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: String(IDLE_MS),
      RATE_LIMITS: LIMITS,
    });
    admin = await token({ sub: 'ff-admin', tid: 'acme', role: 'admin' });
  });
  afterAll(async () => {
    await node?.close();
    await pg?.stop();
  });

  it('gives every session the configured server-side timeouts', async () => {
    const [row] = await (node.store as SqlStore).query(
      sql`SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt,
        current_setting('idle_in_transaction_session_timeout') AS it`,
    );
    expect(row).toEqual({ st: '5s', lt: '500ms', it: '1500ms' });
  });

  it('answers writes 503 store_unavailable within the bound while the primary is down, and writes again by itself after', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    await pg.stopPrimary();
    const answers: Answer[] = [];
    try {
      // A few seconds of attempts: long enough for postgres.js' reconnect back-off to have grown.
      const until = Date.now() + 4000;
      while (Date.now() < until) {
        answers.push(await post(node.url, `/api/processes/${proc.id}/transition`, admin, { to: 'doing' }));
        await new Promise((r) => setTimeout(r, 50)); // pacing, not waiting for anything
      }
    } finally {
      await pg.startPrimary();
    }
    expect(answers.length).toBeGreaterThan(3);
    for (const a of answers) {
      expect(a).toMatchObject({ status: 503, code: 'store_unavailable' });
      expect(a.ms).toBeLessThan(WRITE_TIMEOUT_MS + SLACK_MS);
    }
    // Back without a restart of the node, within about a second of reconnect back-off.
    const back = Date.now();
    await eventually(
      async () => {
        const r = await post(node.url, `/api/processes/${proc.id}/transition`, admin, { to: 'doing' });
        expect(r.status).toBe(200);
      },
      5000,
      100,
    );
    expect(Date.now() - back).toBeLessThan(5000);
  });

  it('answers within the bound while the primary is frozen, is not ready meanwhile, and recovers on thaw', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    const frozen = await freezePostgres(pg.url);
    try {
      // Its connections stay open and nothing answers: only a deadline ends the wait.
      for (let i = 0; i < 3; i++) {
        const a = await post(node.url, `/api/processes/${proc.id}/transition`, admin, { to: 'doing' });
        expect(a).toMatchObject({ status: 503, code: 'store_unavailable' });
        expect(a.ms).toBeLessThan(WRITE_TIMEOUT_MS + SLACK_MS);
      }
      await eventually(async () => expect(await readyStatus(node.url)).toBe(503), 5000, 100);
    } finally {
      frozen.thaw();
    }
    await eventually(async () => expect(await readyStatus(node.url)).toBe(200), 8000, 100);
    // None of the writes answered 503 was applied late: their transactions rolled back on thaw.
    const now = await api<{ data: Process }>(node.url, 'GET', `/api/processes/${proc.id}`, { token: admin });
    expect(now.body.data.stage).toBe('todo');
    await eventually(
      async () => {
        const r = await post(node.url, `/api/processes/${proc.id}/transition`, admin, { to: 'doing' });
        expect(r.status).toBe(200);
      },
      8000,
      100,
    );
  });

  /**
   * The live node writes p2 in the tenant whose rows another session holds: every answer prompt
   * (503 while the rows are held: lock_timeout), and a success within `withinMs` of `since`.
   */
  async function writesGoOn(p2: Process, since: number, withinMs: number): Promise<void> {
    const answers: Answer[] = [];
    await eventually(
      async () => {
        const r = await post(node.url, `/api/processes/${p2.id}/transition`, admin, { to: 'doing' });
        answers.push(r);
        expect(r.status).toBe(200);
      },
      withinMs + 4000,
      50,
    );
    expect(Date.now() - since).toBeLessThan(withinMs);
    for (const r of answers) {
      expect([200, 503]).toContain(r.status);
      expect(r.ms).toBeLessThan(WRITE_TIMEOUT_MS + SLACK_MS);
    }
  }

  it('answers writes 503 store_unavailable while the primary is read-only (a failover under way), is not ready meanwhile, and writes again after', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    const socket = await client(node.url, { token: admin });
    // What a demoted primary, or a URL that reaches a standby, answers every write: 25006.
    const su = postgres(pg.url, { max: 1, onnotice: () => {} });
    const readOnly = async (on: boolean) => {
      await (on ? su`ALTER SYSTEM SET default_transaction_read_only = on` : su`ALTER SYSTEM RESET default_transaction_read_only`);
      await su`SELECT pg_reload_conf()`;
    };
    try {
      await readOnly(true);
      await eventually(async () => expect(await readyStatus(node.url)).toBe(503), 15_000, 100);
      const ready = await api<{ error: { code: string; message: string } }>(node.url, 'GET', '/ready');
      expect(ready.body.error).toMatchObject({ code: 'not_ready', message: 'database read-only' });
      // Several writes of each kind, over the pool's sessions (each reads the reloaded setting before its next command).
      for (let i = 0; i < 4; i++) {
        expect(await post(node.url, `/api/processes/${proc.id}/transition`, admin, { to: 'doing' })).toMatchObject({
          status: 503,
          code: 'store_unavailable',
        });
        expect(await post(node.url, '/api/processes', admin, { workflowId: wf.id, title: 'x' })).toMatchObject({
          status: 503,
          code: 'store_unavailable',
        });
        expect(await request(socket, 'process:transition', { processId: proc.id, to: 'doing' })).toMatchObject({
          error: { code: 'store_unavailable' },
        });
      }
    } finally {
      await readOnly(false);
      await su.end();
    }
    await eventually(async () => expect(await readyStatus(node.url)).toBe(200), 15_000, 100);
    const now = await api<{ data: Process }>(node.url, 'GET', `/api/processes/${proc.id}`, { token: admin });
    expect(now.body.data.stage).toBe('todo');
    await eventually(async () => {
      const r = await post(node.url, `/api/processes/${proc.id}/transition`, admin, { to: 'doing' });
      expect(r.status).toBe(200);
    });
    socket.close();
  });

  it("a session left idle in a transaction on the tenant's row is ended by the server, and writers go on", async () => {
    const wf = await createBoard(node.url, admin);
    const p2 = await createProcess(node.url, admin, wf.id);
    // Another node's store (same session settings), whose transaction takes the tenant's row and
    // then never goes on: what Postgres sees of a node frozen between two statements.
    const other = await createStore({ databaseUrl: pg.url, poolSize: 1, session: { idleInTransactionTimeoutMs: IDLE_MS } });
    const observer = postgres(pg.url, { max: 1, onnotice: () => {} });
    let locked = () => {};
    const holding = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const stuck = (other as unknown as { primary: Db }).primary
      .transaction(async (tx) => {
        await tx.execute(sql`SELECT last_event_id FROM tenant_cursors WHERE tenant_id = 'acme' FOR UPDATE`);
        locked();
        await new Promise(() => {});
      })
      .catch((err: unknown) => err);
    try {
      await holding;
      const since = Date.now();
      const [row] = await observer<{ state: string }[]>`SELECT state FROM pg_stat_activity
        WHERE query LIKE '%FOR UPDATE' AND application_name = 'fluxo' AND pid <> pg_backend_pid()`;
      expect(row?.state).toBe('idle in transaction');
      await writesGoOn(p2, since, IDLE_MS + 3000);
      // Ended by the server: its transaction failed instead of holding on.
      expect(await stuck).toBeInstanceOf(Error);
    } finally {
      await observer.end();
      await other.close();
    }
  });

  it("a node frozen mid-statement is ended by the other nodes, and the tenant's writers go on", async () => {
    const wf = await createBoard(node.url, admin);
    const p1 = await createProcess(node.url, admin, wf.id, 'on the frozen node');
    const p2 = await createProcess(node.url, admin, wf.id, 'on the live node');
    // Node A, a real process: waits patiently for locks (so that it is frozen while holding the
    // tenant's rows), with the same limit on idle transactions.
    const logDir = await mkdtemp(join(tmpdir(), 'fluxo-fail-fast-'));
    const a: SpawnedNode = await spawnNode(
      {
        DATABASE_URL: pg.url,
        RATE_LIMITS: LIMITS,
        LOG_LEVEL: 'warn',
        DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: String(IDLE_MS),
        DB_LOCK_TIMEOUT_MS: '30000',
        DB_STATEMENT_TIMEOUT_MS: '30000',
        DB_WRITE_TIMEOUT_MS: '30000',
      },
      join(logDir, 'node-a.log'),
    );
    const observer = postgres(pg.url, { max: 1, onnotice: () => {} });
    const blocker = postgres(pg.url, { max: 1, onnotice: () => {} });
    let release = () => {};
    let holding: Promise<unknown> = Promise.resolve();
    try {
      // 1. Events are inserted last in a write's transaction (with the processes' update, in one
      //    statement), after the tenant's rows are taken: while events are locked, A's insert waits
      //    there, holding those rows.
      const released = new Promise<void>((r) => {
        release = r;
      });
      const locked = new Promise<void>((resolve, reject) => {
        holding = blocker
          .begin(async (tx) => {
            await tx`LOCK TABLE events IN SHARE MODE`;
            resolve();
            await released;
          })
          .catch(reject);
      });
      await locked;
      void post(a.url, `/api/processes/${p1.id}/transition`, admin, { to: 'doing' }, 60_000);
      let aPid = 0;
      await eventually(
        async () => {
          const rows = await observer<{ pid: number }[]>`SELECT pid FROM pg_stat_activity
            WHERE application_name = 'fluxo' AND wait_event_type = 'Lock' AND query ILIKE '%insert into%events%'`;
          expect(rows).toHaveLength(1);
          aPid = rows[0]!.pid;
        },
        10_000,
        25,
      );
      // 2. Freeze A, then let its Parse finish: its session now waits for A's next message
      //    ("active", ClientRead) — neither idle_in_transaction_session_timeout nor
      //    statement_timeout ends that in Postgres 15.
      a.proc.kill('SIGSTOP');
      release();
      await holding;
      const since = Date.now();
      await eventually(
        async () => {
          const [row] = await observer<
            { state: string; wait_event: string }[]
          >`SELECT state, wait_event FROM pg_stat_activity WHERE pid = ${aPid}`;
          expect(row).toEqual({ state: 'active', wait_event: 'ClientRead' });
        },
        1000,
        10,
      );

      // 3. The live node ends that session after IDLE_MS, and writes in the tenant go on.
      await writesGoOn(p2, since, IDLE_MS + 3000);
      expect(await observer`SELECT 1 FROM pg_stat_activity WHERE pid = ${aPid}`).toHaveLength(0);
      // A's write never committed.
      const [p1Now] = await observer<{ stage: string }[]>`SELECT stage FROM processes WHERE id = ${p1.id}`;
      expect(p1Now?.stage).toBe('todo');
    } finally {
      release();
      await holding.catch(() => {});
      a.proc.kill('SIGCONT');
      await a.kill9();
      await observer.end();
      await blocker.end();
      await rm(logDir, { recursive: true, force: true });
    }
  });
});
