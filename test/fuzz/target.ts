/**
 * The system under attack, as real processes: a Fluxo node spawned with `node --import tsx
 * server/main.ts` (so a crash is an exit, not a failed assertion), Postgres 15 behind it (or the
 * embedded PGlite), a reader of the node's pino JSON log, a spy client of another tenant, and the
 * means to check the invariants: row counts straight from Postgres, a barrier event to the spy's
 * tenant.
 */
import { io as connectClient } from 'socket.io-client';
import { type HostileNode, type NodeLog, SECRET, type SpyEntry, startHostileNode, token } from '../harness/hostile.js';
import type { Client } from '../harness/node.js';

export { SECRET, type SpyEntry };

// ─── The target ─────────────────────────────────────────────────────────────────────────────────

export interface Ids {
  /** The fuzzer's tenant, its admin's user id, a workflow and processes in it. */
  fzTenant: string;
  fzUser: string;
  fzWorkflow: string;
  fzProcesses: string[];
  /** The spy's tenant: nothing from the fuzzer may ever reach it. */
  spyTenant: string;
  spyUser: string;
  spyWorkflow: string;
  spyProcess: string;
}

/** Rows in the tables a write touches. */
export interface Counts {
  workflows: number;
  processes: number;
  events: number;
  idempotency_keys: number;
  revoked_tokens: number;
}
export const COUNTED: (keyof Counts)[] = ['workflows', 'processes', 'events', 'idempotency_keys', 'revoked_tokens'];

export interface Spy {
  socket: Client;
  /** Everything the spy received, in order (`hello` included). */
  received: SpyEntry[];
  /** Disconnects seen (the spy must never be cut by someone else's input). */
  disconnects: string[];
}

export interface TargetOptions {
  /** `postgres` (default): a throwaway Postgres 15, rows counted with SQL. `pglite`: embedded, no row counts. */
  store?: 'postgres' | 'pglite';
  /** Extra env for the node. */
  env?: Record<string, string>;
  /** Keep the temp dir (node log) after stop. */
  keep?: boolean;
}

export interface Target {
  readonly url: string;
  readonly logFile: string;
  readonly node: HostileNode;
  readonly log: NodeLog;
  readonly ids: Ids;
  readonly publishKey: string;
  readonly maxPayloadBytes: number;
  readonly spy: Spy;
  /** Null with PGlite. */
  counts(): Promise<Counts | null>;
  /** The node is running and /health answers 200 (within `ms`). */
  healthy(ms?: number): Promise<{ ok: boolean; status: string; ms: number }>;
  /**
   * Publishes a barrier event to the spy's tenant room (from the control address) and waits for the
   * spy to receive it: everything sent to the spy before it has arrived. Returns its index in
   * `spy.received`.
   */
  barrier(deadlineMs?: number): Promise<number>;
  /** Starts a new node on the same port and database after the old one died; reconnects the spy. */
  restart(): Promise<void>;
  /** Stops the node (SIGTERM, so its log is flushed), the spy and Postgres. */
  stop(): Promise<void>;
}

export const MAX_PAYLOAD_BYTES = 8192;

/**
 * Generous budgets: the fuzzer explores handlers, not the limiter (it still hits the limits the
 * defaults of any new cap impose, and 429 is a typed answer). The attack suite tests the limits.
 */
export const FUZZ_RATE_LIMITS =
  'process:transition=5000/1,presence:update=5000/1,subscribe=5000/1,http:write=5000/1,http:read=5000/1,publish=100000/1,handshake=5000/1,auth:refresh=5000/1';

async function httpJson(
  url: string,
  method: string,
  path: string,
  tok: string | null,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url + path, {
    method,
    headers: { ...(tok ? { authorization: `Bearer ${tok}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed };
}

function must<T>(r: { status: number; body: unknown }, status: number, what: string): T {
  if (r.status !== status) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return (r.body as { data: T }).data;
}

export async function startTarget(opts: TargetOptions = {}): Promise<Target> {
  const store = opts.store ?? 'postgres';
  const publishKey = `pk-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}-fuzz`;
  let spySocket: Client | null = null;
  const node = await startHostileNode(
    {
      MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD_BYTES),
      PUBLISH_API_KEY: publishKey,
      RATE_LIMITS: FUZZ_RATE_LIMITS,
      NODE_ID: 'fuzz-node',
      ...opts.env,
    },
    { postgres: store === 'postgres', name: 'fuzz', keep: opts.keep ?? false },
  );
  const log = node.log;
  const sql = node.sql;
  const cleanup = async () => {
    spySocket?.close();
    await node.stop();
  };

  try {
    const url = node.url;
    const ids: Ids = {
      fzTenant: 'fz',
      fzUser: 'fuzzer',
      fzWorkflow: '',
      fzProcesses: [],
      spyTenant: 'spy-tenant',
      spyUser: 'spy',
      spyWorkflow: '',
      spyProcess: '',
    };
    const fzAdmin = await token('fuzz-setup', ids.fzTenant, 'admin');
    const spyAdmin = await token('spy-setup', ids.spyTenant, 'admin');
    const board = {
      name: 'Fuzz board',
      // Stage names that are Object.prototype members, on purpose.
      stages: ['todo', 'doing', 'done', 'toString', 'hasOwnProperty', 'valueOf'],
      // A card can reach valueOf, which has no own entry in transitions: moving it on looks `valueOf` up.
      transitions: {
        todo: ['doing', 'toString'],
        doing: ['done', 'todo'],
        toString: ['hasOwnProperty', 'valueOf'],
        hasOwnProperty: ['todo'],
      },
    };
    ids.fzWorkflow = must<{ id: string }>(await httpJson(url, 'POST', '/api/workflows', fzAdmin, board), 201, 'fuzz workflow').id;
    // P0–P2 are the fuzzer's; P3 is kept for regressions.ts.
    for (let i = 0; i < 4; i++) {
      const p = must<{ id: string }>(
        await httpJson(url, 'POST', '/api/processes', fzAdmin, { workflowId: ids.fzWorkflow, title: `fuzz ${i}` }),
        201,
        'fuzz process',
      );
      ids.fzProcesses.push(p.id);
    }
    ids.spyWorkflow = must<{ id: string }>(await httpJson(url, 'POST', '/api/workflows', spyAdmin, board), 201, 'spy workflow').id;
    ids.spyProcess = must<{ id: string }>(
      await httpJson(url, 'POST', '/api/processes', spyAdmin, { workflowId: ids.spyWorkflow, title: 'secret' }),
      201,
      'spy process',
    ).id;

    const spy: Spy = { socket: null as unknown as Client, received: [], disconnects: [] };
    const connectSpy = async () => {
      const t = await token(ids.spyUser, ids.spyTenant, 'viewer');
      const s: Client = connectClient(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: t } });
      s.onAny((event: string, ...args: unknown[]) => spy.received.push({ at: Date.now(), event, args }));
      s.on('disconnect', (reason) => spy.disconnects.push(reason));
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', (err) => reject(new Error(`spy cannot connect: ${err.message}`)));
      });
      for (const room of ['tenant', `workflow:${ids.spyWorkflow}`, `process:${ids.spyProcess}`, `user:${ids.spyUser}`]) {
        const timed = s.timeout(10_000);
        const ack = (await (timed.emitWithAck as (event: string, payload: unknown) => Promise<unknown>).call(timed, 'subscribe', {
          room,
        })) as {
          error?: unknown;
        };
        if (ack.error) throw new Error(`spy cannot subscribe to ${room}: ${JSON.stringify(ack.error)}`);
      }
      spySocket = s;
      spy.socket = s;
    };
    await connectSpy();

    let barrierN = 0;
    const target: Target = {
      get url() {
        return node.url;
      },
      logFile: node.logFile,
      node,
      log,
      ids,
      publishKey,
      maxPayloadBytes: MAX_PAYLOAD_BYTES,
      spy,
      counts: async () => {
        if (!sql) return null;
        const [row] = await sql`SELECT
          (SELECT count(*) FROM workflows)::int AS workflows,
          (SELECT count(*) FROM processes)::int AS processes,
          (SELECT count(*) FROM events)::int AS events,
          (SELECT count(*) FROM idempotency_keys)::int AS idempotency_keys,
          (SELECT count(*) FROM revoked_tokens)::int AS revoked_tokens`;
        return row as unknown as Counts;
      },
      healthy: async (ms = 5000) => {
        const started = Date.now();
        if (!node.alive()) return { ok: false, status: `exited (${node.proc.exitCode ?? node.proc.signalCode})`, ms: 0 };
        try {
          const res = await fetch(`${node.url}/health`, { signal: AbortSignal.timeout(ms) });
          await res.arrayBuffer();
          return { ok: res.status === 200, status: String(res.status), ms: Date.now() - started };
        } catch (err) {
          return { ok: false, status: (err as Error).message, ms: Date.now() - started };
        }
      },
      barrier: async (deadlineMs = 15_000) => {
        const n = ++barrierN;
        const deadline = Date.now() + deadlineMs;
        for (;;) {
          const r = await httpJson(node.url, 'POST', '/api/publish', publishKey, {
            tenant: ids.spyTenant,
            room: 'tenant',
            type: 'fuzz.barrier',
            data: { n },
          });
          if (r.status === 201) break;
          const retryAfter = (r.body as { error?: { retryAfterMs?: number } }).error?.retryAfterMs;
          if (r.status !== 429 || Date.now() > deadline) throw new Error(`barrier publish: ${r.status} ${JSON.stringify(r.body)}`);
          await new Promise((res) => setTimeout(res, Math.min(retryAfter ?? 100, 1000)));
        }
        const isMine = (e: SpyEntry) =>
          e.event === 'event' &&
          (e.args[0] as { type?: string; data?: { n?: number } })?.type === 'fuzz.barrier' &&
          (e.args[0] as { data: { n: number } }).data.n === n;
        while (!spy.received.some(isMine)) {
          if (Date.now() > deadline) throw new Error(`the spy did not receive barrier ${n} within ${deadlineMs} ms`);
          await new Promise((res) => setTimeout(res, 5));
        }
        return spy.received.findIndex(isMine);
      },
      restart: async () => {
        spySocket?.close();
        await node.restart();
        spy.received.length = 0;
        spy.disconnects.length = 0;
        await connectSpy();
      },
      stop: cleanup,
    };
    return target;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
