import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';

/*
 * Issue 9, point 3: stopping the Postgres primary crashed Fluxo nodes. postgres.js 3.4.9 buffers small
 * writes behind a setImmediate; a write that comes in after the socket closed (the ROLLBACK that
 * sql.begin() sends once its query failed with CONNECTION_CLOSED) runs `socket.write` on a null
 * socket from that immediate: an uncaught TypeError, and the process exits (porsager/postgres#1154,
 * #1208). patches/postgres+3.4.9.patch guards the write and settles the waiting queries with
 * CONNECTION_CLOSED instead (as porsager/postgres#1209). It also settles, on close, a query written
 * between the socket's 'error' and 'close' events (after a reset): without that, the ROLLBACK stays
 * queued on the connection and, once it reconnects, the connection waits for its answer forever.
 *
 * The pool runs in a child process so that an uncatchable crash shows as the child exiting.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = '/usr/lib/postgresql/15/bin';
const POOL_MAX = 8;
const run = promisify(execFile);

/**
 * The child: one pool, as many workers as connections looping over transactions (the crashing path;
 * drizzle's db.transaction is sql.begin) and plain queries, reporting counts over IPC every 20 ms.
 * No more workers than connections: then no query waits in the pool's queue, and a connection that
 * closes is not handed one and retried at once (a refused retry would settle a dropped write too).
 */
const CHILD = `
import postgres from 'postgres';

const MAX = Number(process.env.POOL_MAX);
const sql = postgres(process.env.PG_URL, {
  max: MAX,
  connect_timeout: 5,
  idle_timeout: 60,
  onnotice: () => {},
  // The default backoff waits up to 20 s between reconnects once connects were refused: keep the test short.
  backoff: (retries) => Math.min(0.01 * retries, 0.2),
});

let seq = 0;
let ok = 0;
let failed = 0;
let markSeq = 0;
let longestMs = 0;
let running = true;
// parked: a worker whose query failed waits for 'resume' instead of retrying, so that nothing but
// the queries already in flight touches the pool. held: every worker waits (during a probe).
let parked = null;
let held = null;
const pending = new Map();
const errors = {};

function gate() {
  let open;
  const promise = new Promise((resolve) => (open = resolve));
  return { promise, open: () => open() };
}

function track(kind, query) {
  const id = ++seq;
  const started = Date.now();
  const done = (async () => {
    try {
      await query();
      ok++;
      return true;
    } catch (err) {
      failed++;
      const key = kind + ':' + (err?.code ?? err?.name ?? String(err));
      errors[key] = (errors[key] ?? 0) + 1;
      return false;
    } finally {
      pending.delete(id);
      longestMs = Math.max(longestMs, Date.now() - started);
    }
  })();
  pending.set(id, { started, done });
  return done;
}

// sql.unsafe with parameters, as drizzle's postgres-js driver sends its queries.
const ops = [
  () => track('tx', () => sql.begin(async (tx) => {
    await tx.unsafe('select pg_backend_pid() as pid');
    await tx.unsafe('select pg_sleep($1)', [0.002]);
  })),
  (i) => track('plain', () => sql.unsafe('select $1::int as n', [i])),
  () => track('sleep', () => sql.unsafe('select pg_sleep($1)', [0.005])),
];

async function worker(w) {
  for (let i = w; running; i++) {
    if (held) await held.promise;
    if (await ops[i % ops.length](i)) continue;
    // While Postgres is down every attempt fails at once: pause briefly instead of spinning.
    await (parked?.promise ?? new Promise((resolve) => setTimeout(resolve, 10)));
  }
}
const workers = Array.from({ length: MAX }, (_, w) => worker(w));

function stats(type = 'stats', extra = {}) {
  const now = Date.now();
  let pendingAtMark = 0;
  let oldestMs = 0;
  for (const [id, { started }] of pending) {
    if (id <= markSeq) pendingAtMark++;
    oldestMs = Math.max(oldestMs, now - started);
  }
  return { type, ok, failed, inflight: pending.size, pendingAtMark, oldestMs, longestMs, errors, ...extra };
}

// With the load held: how many distinct connections serve MAX concurrent queries. A write dropped
// instead of settled leaves its query queued on the connection: once reconnected, the connection
// waits forever for that query's answer, and serves nothing more.
async function probe() {
  held = gate();
  try {
    await Promise.all([...pending.values()].map((p) => p.done));
    const rows = await Promise.all(Array.from({ length: MAX }, () => sql.unsafe('select pg_backend_pid() as pid, pg_sleep(0.05)')));
    return { connections: new Set(rows.map(([row]) => row.pid)).size };
  } catch (err) {
    return { connections: 0, probeError: String(err) };
  } finally {
    held.open();
    held = null;
  }
}

const ticker = setInterval(() => process.send(stats()), 20);
process.on('message', async (msg) => {
  if (msg === 'mark') {
    markSeq = seq;
    parked = gate();
    process.send(stats('marked'));
  } else if (msg === 'resume') {
    parked?.open();
    parked = null;
    process.send(stats('resumed'));
  } else if (msg === 'probe') {
    process.send(stats('probed', await probe()));
  } else if (msg === 'finish') {
    running = false;
    parked?.open();
    await Promise.all(workers);
    await sql.end({ timeout: 2 });
    clearInterval(ticker);
    // Nothing left to keep the process alive: it exits by itself once the channel is closed.
    process.send(stats('final'), () => process.disconnect());
  }
});
`;

interface Stats {
  type: 'stats' | 'marked' | 'resumed' | 'probed' | 'final';
  ok: number;
  failed: number;
  /** Queries started and not yet settled. */
  inflight: number;
  /** Of those, the ones started before the last mark. */
  pendingAtMark: number;
  oldestMs: number;
  /** The longest any settled query took. */
  longestMs: number;
  /** Failures by `kind:code`. */
  errors: Record<string, number>;
  /** Of a probe: distinct backends that served POOL_MAX concurrent queries. */
  connections?: number;
  probeError?: string;
}

/** pg_ctl as the postgres OS user (the harness stops with -m fast only). */
async function pgCtl(args: string[]): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', `${BIN}/pg_ctl`, ...args]] : [`${BIN}/pg_ctl`, args];
  await run(cmd, argv, { timeout: 60_000 });
}

class Child {
  readonly proc: ChildProcess;
  latest: Stats | undefined;
  stderr = '';

  constructor(url: string) {
    this.proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
      cwd: ROOT,
      env: { ...process.env, PG_URL: url, POOL_MAX: String(POOL_MAX) },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.proc.stderr!.on('data', (d) => {
      this.stderr += d;
    });
    this.proc.on('message', (m: Stats) => {
      this.latest = m;
    });
  }

  private gone(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  private exitText(): string {
    return `the child exited (code ${this.proc.exitCode}, signal ${this.proc.signalCode}):\n${this.stderr}`;
  }

  /** Resolves with the first report that satisfies `pred`; rejects at once if the child exits. */
  waitFor(label: string, pred: (s: Stats) => boolean, timeoutMs = 10_000): Promise<Stats> {
    return new Promise((resolve, reject) => {
      if (this.gone()) return reject(new Error(`${label}: ${this.exitText()}`));
      const done = () => {
        clearTimeout(timer);
        this.proc.off('message', onMessage);
        this.proc.off('exit', onExit);
      };
      const onMessage = (m: Stats) => {
        if (!pred(m)) return;
        done();
        resolve(m);
      };
      const onExit = () => {
        done();
        reject(new Error(`${label}: ${this.exitText()}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${label}: not within ${timeoutMs} ms; last report ${JSON.stringify(this.latest)}`));
      }, timeoutMs);
      this.proc.on('message', onMessage);
      this.proc.on('exit', onExit);
    });
  }

  /** Sends a command and waits for its answer (IPC keeps the order, so later reports reflect it). */
  command(msg: 'mark' | 'resume' | 'probe' | 'finish', answer: Stats['type'], timeoutMs?: number): Promise<Stats> {
    const answered = this.waitFor(msg, (s) => s.type === answer, timeoutMs);
    this.proc.send(msg);
    return answered;
  }

  /** Probes until every pool connection serves a query again. */
  async allConnectionsServe(label: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const probed = await this.command('probe', 'probed');
      if (probed.connections === POOL_MAX) return;
      if (Date.now() > deadline) {
        const why = probed.probeError ?? JSON.stringify(probed);
        throw new Error(`${label}: ${probed.connections} of ${POOL_MAX} connections serve queries; ${why}\n${this.stderr.slice(-2000)}`);
      }
    }
  }

  exited(timeoutMs = 10_000): Promise<number | null> {
    if (this.gone()) return Promise.resolve(this.proc.exitCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the child did not exit within ${timeoutMs} ms`)), timeoutMs);
      this.proc.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }
}

describe('postgres.js when the Postgres primary stops under load', () => {
  let pg: PostgresHandle;
  let dataDir: string;

  beforeAll(async () => {
    pg = await startPostgres();
    const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await admin<{ dir: string }[]>`select current_setting('data_directory') as dir`;
      dataDir = row!.dir;
    } finally {
      await admin.end();
    }
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('keeps the process alive, settles every query and recovers after the restart', { timeout: 120_000 }, async () => {
    const child = new Child(pg.url);
    try {
      await child.waitFor('the load starts', (s) => s.ok >= 100, 20_000);
      await child.allConnectionsServe('at the start');

      // An immediate stop is a crash (backends quit at once), a fast one ends every session with
      // 57P01. The load resumes while Postgres is down (new queries fail, the pool retries) or only
      // once it is back (the pool reconnects straight to a live server).
      for (const [mode, resumeWhile] of [
        ['immediate', 'down'],
        ['fast', 'down'],
        ['immediate', 'up'],
        ['fast', 'up'],
      ] as const) {
        const round = `${mode} stop, load resumed while ${resumeWhile}`;
        const before = child.latest!;
        await child.waitFor(`${round}: load running`, (s) => s.ok >= before.ok + 100, 20_000);

        // Every query in flight as Postgres goes down settles while it is down, without help: the
        // workers are parked, so no new query makes the pool reconnect.
        await child.command('mark', 'marked');
        await pgCtl(['-D', dataDir, '-m', mode, '-w', 'stop']);
        await child.waitFor(`${round}: in-flight queries settle`, (s) => s.pendingAtMark === 0 && s.inflight === 0);
        if (resumeWhile === 'down') {
          const down = await child.command('resume', 'resumed');
          await child.waitFor(`${round}: new queries fail while Postgres is down`, (s) => s.failed >= down.failed + 20);
        }

        await pgCtl(['-D', dataDir, '-l', `${dataDir}.log`, '-w', '-t', '30', 'start']);
        if (resumeWhile === 'up') await child.command('resume', 'resumed');
        const up = child.latest!;
        await child.waitFor(`${round}: queries succeed after the restart`, (s) => s.ok >= up.ok + 200, 20_000);
        // No connection is left waiting for the answer to a query it never sent.
        await child.allConnectionsServe(`${round}: after the restart`);
      }

      const final = await child.command('finish', 'final', 20_000);
      expect(await child.exited()).toBe(0);
      expect(final.inflight).toBe(0);
      // connect_timeout is 5 s and the backoff 0.2 s at most: nothing waited on a dead socket.
      expect(final.longestMs).toBeLessThan(10_000);
      // Transactions were cut by the stops (the path that crashed), and every failure is an error
      // with a code (CONNECTION_CLOSED, a socket error, a SQLSTATE such as 57P01), not a TypeError.
      const txCut = Object.keys(final.errors).filter((k) => /^tx:(CONNECTION_CLOSED|ECONNRESET|EPIPE|57P01)$/.test(k));
      expect(txCut, JSON.stringify(final.errors)).not.toEqual([]);
      for (const key of Object.keys(final.errors)) expect(key).toMatch(/^(tx|plain|sleep):([A-Z][A-Z_]+|[0-9A-Z]{5})$/);
    } finally {
      child.proc.kill('SIGKILL');
    }
  });
});
