/**
 * What the attack suite (test/integration/attack-*.test.ts) and the fuzzer (test/fuzz/) share: a
 * node spawned as its own process with its pino log read line by line, hand-forged JWTs, a spy
 * client of another tenant with a barrier, a /health latency probe, and deadline-bound waits.
 * The wire-level clients (raw HTTP, Engine.IO, Socket.IO) are in wire.ts.
 */
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import postgres from 'postgres';
import { io as connectClient } from 'socket.io-client';
import { CLUSTER_SECRET, type SpawnedNode, spawnNode } from '../../scripts/topology/cluster.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { mintToken } from '../../server/auth/mint.js';
import type { Role } from '../../shared/protocol.js';
import type { Client } from './node.js';
import { rawHttp } from './wire.js';

export const SECRET = CLUSTER_SECRET;

// ─── Waiting ────────────────────────────────────────────────────────────────────────────────────

/** Re-checks `pred` every `stepMs` until it holds; throws naming `what` at the deadline. Not a sleep: it returns as soon as the condition holds. */
export async function waitFor<T>(pred: () => T | Promise<T>, what: string, timeoutMs = 10_000, stepMs = 10): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

// ─── The node's log ─────────────────────────────────────────────────────────────────────────────

export interface LogLine {
  /** pino's `time` (ms since epoch) for JSON lines, the time we read it for others. */
  at: number;
  /** pino level (50 error, 60 fatal); 0 for a line that is not pino JSON. */
  level: number;
  msg: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

/** Every line a node (and the nodes that replaced it after a restart) printed, parsed. */
export class NodeLog {
  readonly lines: LogLine[] = [];

  attach(stream: Readable | null, name: 'stdout' | 'stderr'): void {
    if (!stream) return;
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      rest += chunk;
      let nl = rest.indexOf('\n');
      while (nl >= 0) {
        this.add(rest.slice(0, nl), name);
        rest = rest.slice(nl + 1);
        nl = rest.indexOf('\n');
      }
    });
    stream.on('end', () => {
      if (rest) this.add(rest, name);
      rest = '';
    });
  }

  private add(text: string, stream: 'stdout' | 'stderr'): void {
    if (!text.trim()) return;
    let level = 0;
    let at = Date.now();
    let msg = text;
    if (text.startsWith('{')) {
      try {
        const j = JSON.parse(text) as { level?: number; time?: number; msg?: string };
        if (typeof j.level === 'number') level = j.level;
        if (typeof j.time === 'number') at = j.time;
        msg = j.msg ?? '';
      } catch {}
    }
    this.lines.push({ at, level, msg, stream, text });
  }

  /**
   * Lines that mean something went wrong, logged in [from, to]: pino level ≥ 50 (error, fatal), and
   * anything that is not pino JSON on stderr (a stack trace, an uncaught exception, a warning).
   */
  problems(from = 0, to = Number.POSITIVE_INFINITY): LogLine[] {
    return this.lines.filter((l) => l.at >= from && l.at <= to && (l.level >= 50 || (l.level === 0 && l.stream === 'stderr')));
  }
}

// ─── A node as a process ────────────────────────────────────────────────────────────────────────

export interface HostileNode {
  readonly url: string;
  readonly port: number;
  readonly proc: SpawnedNode['proc'];
  readonly log: NodeLog;
  readonly logFile: string;
  /** Set when started with `postgres`. */
  readonly pg: PostgresHandle | null;
  readonly sql: postgres.Sql | null;
  alive(): boolean;
  /** SIGKILLs the node if it runs, and starts it again on the same port and database. */
  restart(env?: Record<string, string>): Promise<void>;
  /** SIGTERM (the log is flushed), then Postgres. */
  stop(): Promise<void>;
}

export interface HostileOptions {
  /** A throwaway Postgres 15 (else embedded PGlite in memory). */
  postgres?: boolean;
  /** Reuse this Postgres (not stopped by `stop`). */
  database?: PostgresHandle;
  name?: string;
  /** Keep the temp dir (the node's log) after stop. */
  keep?: boolean;
}

/** A Fluxo node as its own process (JWT_SECRET = SECRET unless `env` says otherwise), its log parsed. */
export async function startHostileNode(env: Record<string, string> = {}, opts: HostileOptions = {}): Promise<HostileNode> {
  const dir = await mkdtemp(join(tmpdir(), `fluxo-${opts.name ?? 'attack'}-`));
  const logFile = join(dir, 'node.log');
  const log = new NodeLog();
  let pg: PostgresHandle | null = opts.database ?? null;
  const ownPg = !opts.database && opts.postgres === true;
  let sql: postgres.Sql | null = null;
  let node: SpawnedNode | null = null;
  const stop = async () => {
    if (node) {
      const n = node;
      const timer = setTimeout(() => void n.kill9(), 8000);
      await n.stop().catch(() => {});
      clearTimeout(timer);
    }
    await sql?.end({ timeout: 2 }).catch(() => {});
    if (ownPg) await pg?.stop().catch(() => {});
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  };
  try {
    if (ownPg) pg = await startPostgres();
    const base: Record<string, string> = { MIGRATE_ON_START: 'true', ...(pg ? { DATABASE_URL: pg.url } : {}), ...env };
    if (pg) sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    const spawn = async (e: Record<string, string>, port?: number) => {
      const n = await spawnNode({ ...e, ...(port ? { PORT: String(port) } : {}) }, logFile, 60_000);
      log.attach(n.proc.stdout, 'stdout');
      log.attach(n.proc.stderr, 'stderr');
      return n;
    };
    node = await spawn(base);
    const current = () => node as SpawnedNode;
    return {
      get url() {
        return current().url;
      },
      get port() {
        return current().port;
      },
      get proc() {
        return current().proc;
      },
      log,
      logFile,
      pg,
      sql,
      alive: () => current().proc.exitCode === null && current().proc.signalCode === null,
      restart: async (env2) => {
        const old = current();
        await old.kill9();
        node = await spawn({ ...base, ...env2 }, old.port);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** GET /health from the control address: status and time taken (ms). */
export async function health(url: string, timeoutMs = 5000): Promise<{ ok: boolean; ms: number; status: string }> {
  const started = performance.now();
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return { ok: res.status === 200, ms: performance.now() - started, status: String(res.status) };
  } catch (err) {
    return { ok: false, ms: performance.now() - started, status: (err as Error).message };
  }
}

/** Samples /health every `everyMs` until stopped: what a load balancer's health check would see during an attack. */
export function latencyProbe(
  url: string,
  everyMs = 50,
): { stop(): Promise<{ samples: number; failures: number; maxMs: number; p99Ms: number }> } {
  const times: number[] = [];
  let failures = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const h = await health(url, 10_000);
      if (h.ok) times.push(h.ms);
      else failures++;
      if (running) await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      const sorted = [...times].sort((a, b) => a - b);
      return {
        samples: times.length,
        failures,
        maxMs: sorted.at(-1) ?? 0,
        p99Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0,
      };
    },
  };
}

/** Prometheus text → the value of `name{labels…}` (labels matched as given), or 0. */
export async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

// ─── Tokens ─────────────────────────────────────────────────────────────────────────────────────

export function token(
  sub: string,
  tid: string,
  role: Role,
  opts: { ttlS?: number; secret?: string; issuer?: string; audience?: string } = {},
): Promise<string> {
  return mintToken({
    sub,
    tid,
    role,
    ttlS: opts.ttlS ?? 3600,
    secret: opts.secret ?? SECRET,
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
    ...(opts.audience ? { audience: opts.audience } : {}),
  });
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/**
 * A JWT with any header and claims, written by hand: HMAC-signed with `key` (SHA-256/384/512 as
 * the `alg` says; any alg name, so an `RS256` header over an HMAC is possible), or unsigned when
 * `key` is null.
 */
export function forgeToken(header: Record<string, unknown>, claims: Record<string, unknown>, key: string | Buffer | null): string {
  const input = `${b64(header)}.${b64(claims)}`;
  if (key === null) return `${input}.`;
  const alg = String(header.alg ?? '');
  const hash = /384/.test(alg) ? 'sha384' : /512/.test(alg) ? 'sha512' : 'sha256';
  return `${input}.${createHmac(hash, key).update(input).digest('base64url')}`;
}

/** Claims of a valid Fluxo token (exp in an hour), to change one at a time. */
export function claimsOf(sub: string, tid: string, role: Role): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { sub, tid, role, iat: now, exp: now + 3600, jti: `j-${Math.random().toString(36).slice(2)}` };
}

// ─── HTTP ───────────────────────────────────────────────────────────────────────────────────────

let addresses = 0;
/**
 * A loopback source address this process has not used yet (any of 127/8 is local on Linux), for an
 * attacker's request: per-IP budgets of one attack then do not spill into the next. 127.0.0.1 stays
 * the control address (setup, barriers, /health).
 */
export function freshAddress(): string {
  addresses++;
  return `127.${1 + (Math.floor(addresses / 250) % 250)}.${2 + (addresses % 250)}.7`;
}

export interface JsonResponse {
  status: number;
  body: { data?: unknown; error?: { code: string; message: string; retryAfterMs?: number } } & Record<string, unknown>;
  /** Lower-case names. */
  headers: Record<string, string>;
  /** The connection was closed without a (whole) response. */
  closed?: string;
}

/**
 * One HTTP request on its own connection (raw, so any header goes through), from `from` (default
 * 127.0.0.1, the control address). Never rejects: a connection closed without a response comes
 * back as status 0 with `closed`.
 */
export async function call(
  url: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: string; from?: string; timeoutMs?: number } = {},
): Promise<JsonResponse> {
  const headers: [string, string][] = Object.entries(opts.headers ?? {});
  if (opts.token) headers.push(['Authorization', `Bearer ${opts.token}`]);
  const body = opts.raw ?? (opts.body !== undefined ? JSON.stringify(opts.body) : undefined);
  if (body !== undefined && !headers.some(([k]) => k.toLowerCase() === 'content-type')) headers.push(['Content-Type', 'application/json']);
  const r = await rawHttp(url, {
    method,
    target: path,
    headers,
    ...(body !== undefined ? { body } : {}),
    ...(opts.from ? { localAddress: opts.from } : {}),
    timeoutMs: opts.timeoutMs ?? 15_000,
  });
  if (r.kind !== 'response')
    return { status: 0, body: {}, headers: {}, closed: `${r.kind}${'error' in r && r.error ? ` ${r.error}` : ''}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.body.toString('utf8'));
  } catch {
    parsed = { text: r.body.toString('utf8') };
  }
  return { status: r.status, body: parsed as JsonResponse['body'], headers: r.headers };
}

// ─── The spy ────────────────────────────────────────────────────────────────────────────────────

export interface SpyEntry {
  at: number;
  event: string;
  args: unknown[];
}

export interface Spy {
  socket: Client;
  userId: string;
  tenant: string;
  received: SpyEntry[];
  disconnects: string[];
  /**
   * Publishes a barrier event to the spy's tenant room (PUBLISH_API_KEY) and waits until the spy
   * has it: whatever was sent to the spy before has arrived by then. Then checks that nothing but
   * its own presence, its barriers and `allowed` events arrived since the last check; throws naming
   * what leaked.
   */
  assertNothingElse(allowed?: (e: SpyEntry) => boolean): Promise<void>;
  close(): void;
}

/** A socket of `tenant` subscribed to `rooms` (its tenant room at least), recording everything it receives. */
export async function startSpy(
  url: string,
  opts: { tenant: string; userId?: string; rooms?: string[]; publishKey: string; issuer?: string; audience?: string },
): Promise<Spy> {
  const userId = opts.userId ?? 'spy';
  const t = await token(userId, opts.tenant, 'viewer', {
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
    ...(opts.audience ? { audience: opts.audience } : {}),
  });
  const socket: Client = connectClient(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: t } });
  const received: SpyEntry[] = [];
  const disconnects: string[] = [];
  socket.onAny((event: string, ...args: unknown[]) => received.push({ at: Date.now(), event, args }));
  socket.on('disconnect', (reason) => disconnects.push(reason));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) =>
      reject(new Error(`spy cannot connect: ${err.message} ${JSON.stringify((err as { data?: unknown }).data)}`)),
    );
  });
  for (const room of ['tenant', ...(opts.rooms ?? [])]) {
    const timed = socket.timeout(10_000);
    const ack = (await (timed.emitWithAck as (e: string, p: unknown) => Promise<unknown>).call(timed, 'subscribe', { room })) as {
      error?: unknown;
    };
    if (ack.error) throw new Error(`spy cannot subscribe to ${room}: ${JSON.stringify(ack.error)}`);
  }
  let checkedUpTo = 0;
  let n = 0;
  const spy: Spy = {
    socket,
    userId,
    tenant: opts.tenant,
    received,
    disconnects,
    close: () => socket.close(),
    assertNothingElse: async (allowed = () => false) => {
      const mine = ++n;
      const res = await call(url, 'POST', '/api/publish', {
        token: opts.publishKey,
        body: { tenant: opts.tenant, room: 'tenant', type: 'spy.barrier', data: { n: mine } },
      });
      if (res.status !== 201) throw new Error(`barrier publish: ${res.status} ${JSON.stringify(res.body)}`);
      const isBarrier = (e: SpyEntry) =>
        e.event === 'event' &&
        (e.args[0] as { type?: string; data?: { n?: number } }).type === 'spy.barrier' &&
        (e.args[0] as { data: { n: number } }).data.n === mine;
      const at = await waitFor(() => {
        const i = received.findIndex(isBarrier);
        return i >= 0 ? i + 1 : 0;
      }, `the spy's barrier ${mine}`);
      const since = received.slice(checkedUpTo, at - 1);
      checkedUpTo = at;
      const leaked = since.filter((e) => {
        if (e.event === 'hello') return false;
        if (e.event === 'event' && (e.args[0] as { type?: string }).type === 'spy.barrier') return false;
        if (e.event === 'presence') {
          const d = e.args[0] as { joins?: { userId?: string }[]; leaves?: { userId?: string }[]; updates?: { userId?: string }[] };
          if ([...(d.joins ?? []), ...(d.leaves ?? []), ...(d.updates ?? [])].every((m) => m.userId === userId)) return false;
        }
        return !allowed(e);
      });
      if (leaked.length > 0)
        throw new Error(
          `the spy of ${opts.tenant} received: ${leaked.map((e) => `${e.event} ${JSON.stringify(e.args).slice(0, 300)}`).join('\n')}`,
        );
      if (disconnects.length > 0) throw new Error(`the spy was disconnected: ${disconnects.join(', ')}`);
    },
  };
  return spy;
}
