import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import WebSocket from 'ws';

/**
 * Runs a k6 script as k6 would — as far as the Fluxo scripts go — without k6 (not installable here):
 * - init code once per VU, each VU in its own worker thread with its own module instances and
 *   globals (`__ENV`, `__VU`, `__ITER`), plus one more instance that runs `setup()` (VU 0);
 * - `setup()`'s return value passed to every VU's default function as a copy of its JSON;
 * - `k6/http` and `k6/ws` synchronous (the VU blocks while this thread does the I/O);
 * - `checks`, `http_req_duration`, `http_req_failed`, custom metrics, and the script's thresholds
 *   evaluated over all VUs, with k6's rule that a rate or trend without samples passes.
 * Executors are not emulated: each VU runs `iterations` iterations (k6's `per-vu-iterations`).
 * Every request's bearer token and every Socket.IO CONNECT token is decoded and its tenant (`tid`)
 * recorded, and so is the tenant of each publish-API call, so a test can see which tenants the VUs
 * worked in.
 */

const MODULES = new URL('./modules/', import.meta.url);
const SHIMS: Record<string, string> = {
  k6: 'k6.mjs',
  'k6/http': 'http.mjs',
  'k6/ws': 'ws.mjs',
  'k6/metrics': 'metrics.mjs',
  'k6/crypto': 'crypto.mjs',
  'k6/encoding': 'encoding.mjs',
};

export interface K6RunOptions {
  /** Directory of the scripts (loadtest/k6/). */
  dir: URL;
  script: string;
  env: Record<string, string>;
  vus: number;
  iterations: number;
  /** Alter what setup() returned before the VUs get it (to show the thresholds catch bad work). */
  alterSetupData?: (data: unknown) => unknown;
  /** Bound of the whole run. @default 60000 */
  timeoutMs?: number;
}

interface Sample {
  value: number;
  tags: Record<string, string>;
}
interface MetricDump {
  name: string;
  type: 'counter' | 'trend' | 'rate' | 'gauge';
  isTime: boolean;
  samples: Sample[];
}

export interface ThresholdOutcome {
  metric: string;
  expression: string;
  value: number | null;
  ok: boolean;
}

export interface K6RunResult {
  setupData: unknown;
  options: { thresholds?: Record<string, (string | { threshold: string })[]> };
  /** Tenant of each token a VU used, by VU (0 = setup). */
  tenantsByVu: Map<number, Set<string>>;
  /** HTTP responses by VU: method, path, status. */
  requests: { vu: number; method: string; path: string; status: number }[];
  metrics: Map<string, MetricDump>;
  checks: Record<string, { passes: number; fails: number }>;
  thresholds: ThresholdOutcome[];
  /** Exceptions thrown by iterations (k6 logs them and goes on). */
  errors: string[];
  /** k6's exit status: 0, or 99 when a threshold failed. setup() failing is an exception here. */
  exitCode: number;
}

/** A JWT's `tid` claim, without verifying it (the server does that). */
function tenantOf(jwt: string | undefined): string | null {
  const payload = jwt?.split('.')[1];
  if (!payload) return null;
  try {
    return (JSON.parse(Buffer.from(payload, 'base64url').toString()) as { tid?: string }).tid ?? null;
  } catch {
    return null;
  }
}

/** Copies the scripts with the k6 module specifiers pointed at the shims. */
function stage(dir: URL): string {
  const out = mkdtempSync(join(tmpdir(), 'fluxo-k6-'));
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
    const source = readFileSync(new URL(file, dir), 'utf8').replace(/from '(k6(?:\/[a-z/]+)?)'/g, (_whole, spec: string) => {
      const shim = SHIMS[spec];
      if (!shim) throw new Error(`${file}: no shim for ${spec}`);
      return `from '${new URL(shim, MODULES).href}'`;
    });
    writeFileSync(join(out, file), source);
  }
  return out;
}

class Sockets {
  private next = 0;
  private readonly open = new Map<number, { ws: WebSocket; queue: unknown[]; wake: (() => void) | null }>();

  constructor(private readonly onFrame: (data: string) => void) {}

  connect(url: string, headers: Record<string, string>): Promise<{ id?: number; status: number; error?: string }> {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { headers });
      const id = ++this.next;
      const entry = { ws, queue: [] as unknown[], wake: null as (() => void) | null };
      const push = (ev: unknown) => {
        entry.queue.push(ev);
        entry.wake?.();
      };
      ws.on('message', (data, isBinary) => push({ type: 'message', data: isBinary ? data : data.toString() }));
      ws.on('close', (code) => push({ type: 'close', code }));
      ws.on('unexpected-response', (_req, res) => {
        resolve({ status: res.statusCode ?? 0, error: `unexpected response ${res.statusCode}` });
        ws.terminate();
      });
      ws.on('error', (err) => {
        push({ type: 'error', error: err.message });
        resolve({ status: 0, error: err.message });
      });
      ws.on('open', () => {
        this.open.set(id, entry);
        resolve({ id, status: 101 });
      });
    });
  }

  async nextEvent(id: number, timeoutMs: number): Promise<unknown> {
    const entry = this.open.get(id);
    if (!entry) return { type: 'close', code: 1006 };
    if (!entry.queue.length && timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        entry.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      entry.wake = null;
    }
    const ev = entry.queue.shift() ?? { type: 'timeout' };
    if ((ev as { type: string }).type === 'close') this.open.delete(id);
    return ev;
  }

  send(id: number, data: string): void {
    this.onFrame(data);
    this.open.get(id)?.ws.send(data);
  }

  close(id: number): void {
    this.open.get(id)?.ws.close();
  }

  closeAll(): void {
    for (const { ws } of this.open.values()) ws.terminate();
    this.open.clear();
  }
}

interface VuOutcome {
  type: 'setup' | 'done' | 'failed';
  errors: string[];
  metrics: MetricDump[];
  data?: unknown;
  options?: K6RunResult['options'];
}

export async function runK6(o: K6RunOptions): Promise<K6RunResult> {
  const dir = stage(o.dir);
  const tenantsByVu = new Map<number, Set<string>>();
  const requests: K6RunResult['requests'] = [];
  const workers: Worker[] = [];
  const sockets: Sockets[] = [];
  const saw = (vu: number, tenant: string | null) => {
    if (!tenant) return;
    const set = tenantsByVu.get(vu) ?? new Set<string>();
    set.add(tenant);
    tenantsByVu.set(vu, set);
  };

  const startVu = (vu: number, role: 'setup' | 'vu', setupData: unknown): Promise<VuOutcome> => {
    const flag = new SharedArrayBuffer(4);
    const flagView = new Int32Array(flag);
    const { port1, port2 } = new MessageChannel();
    const ws = new Sockets((frame) => {
      // Socket.IO CONNECT with auth: 40{"token":…}
      if (frame.startsWith('40{')) saw(vu, tenantOf((JSON.parse(frame.slice(2)) as { token?: string }).token));
    });
    sockets.push(ws);
    const worker = new Worker(new URL('./vu.mjs', import.meta.url), {
      workerData: {
        scriptUrl: pathToFileURL(join(dir, o.script)).href,
        env: o.env,
        vu,
        role,
        iterations: o.iterations,
        setupData,
        flag,
        replies: port1,
        rpcTimeoutMs: 30_000,
      },
      transferList: [port1 as unknown as MessagePort],
    });
    workers.push(worker);
    const reply = (message: unknown) => {
      port2.postMessage(message);
      Atomics.store(flagView, 0, 1);
      Atomics.notify(flagView, 0);
    };
    const handle = async (r: Record<string, unknown>): Promise<unknown> => {
      switch (r.op) {
        case 'http': {
          const headers = r.headers as Record<string, string>;
          const auth = Object.entries(headers).find(([k]) => k.toLowerCase() === 'authorization')?.[1];
          saw(vu, tenantOf(auth?.replace(/^Bearer /, '')));
          // The publish API names its tenant in the body.
          if (typeof r.body === 'string' && String(r.url).endsWith('/api/publish'))
            saw(vu, (JSON.parse(r.body) as { tenant?: string }).tenant ?? null);
          const started = performance.now();
          try {
            const res = await fetch(String(r.url), {
              method: String(r.method),
              headers,
              body: r.body as string | undefined,
              signal: AbortSignal.timeout(Number(r.timeoutMs)),
            });
            const body = await res.text();
            const url = new URL(String(r.url));
            requests.push({ vu, method: String(r.method), path: url.pathname + url.search, status: res.status });
            const resHeaders: Record<string, string> = {};
            res.headers.forEach((v, k) => {
              resHeaders[k] = v;
            });
            return { status: res.status, body, headers: resHeaders, durationMs: performance.now() - started };
          } catch (err) {
            return { status: 0, body: '', error: (err as Error).message, durationMs: performance.now() - started };
          }
        }
        case 'ws.open':
          return ws.connect(String(r.url), r.headers as Record<string, string>);
        case 'ws.next':
          return ws.nextEvent(Number(r.id), Number(r.timeoutMs));
        case 'ws.send':
          ws.send(Number(r.id), String(r.data));
          return {};
        case 'ws.close':
          ws.close(Number(r.id));
          return {};
        default:
          throw new Error(`unknown op ${String(r.op)}`);
      }
    };
    return new Promise<VuOutcome>((resolve, reject) => {
      worker.on('message', (m: { type: 'rpc'; request: Record<string, unknown> } | VuOutcome) => {
        if (m.type === 'rpc') void handle(m.request).then(reply, (err: Error) => reply({ status: 0, error: err.message }));
        else resolve(m);
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`VU ${vu} exited (${code}) without a result`)));
    });
  };

  const run = async (): Promise<K6RunResult> => {
    const setup = await startVu(0, 'setup', null);
    if (setup.type !== 'setup') throw new Error(`setup() failed: ${setup.errors.join('; ')}`);
    const setupData = o.alterSetupData ? o.alterSetupData(setup.data) : setup.data;
    const outcomes = await Promise.all(Array.from({ length: o.vus }, (_, i) => startVu(i + 1, 'vu', setupData ?? null)));
    const all = [setup, ...outcomes];
    const metrics = new Map<string, MetricDump>();
    for (const out of all)
      for (const m of out.metrics) {
        const into = metrics.get(m.name) ?? { ...m, samples: [] };
        into.samples.push(...m.samples);
        metrics.set(m.name, into);
      }
    const checks: K6RunResult['checks'] = {};
    for (const s of metrics.get('checks')?.samples ?? []) {
      const name = s.tags.check ?? '';
      checks[name] ??= { passes: 0, fails: 0 };
      if (s.value) checks[name].passes++;
      else checks[name].fails++;
    }
    const options = setup.options ?? {};
    const thresholds = evaluateThresholds(options.thresholds ?? {}, metrics);
    return {
      setupData,
      options,
      tenantsByVu,
      requests,
      metrics,
      checks,
      thresholds,
      errors: all.flatMap((out) => out.errors),
      exitCode: thresholds.every((t) => t.ok) ? 0 : 99,
    };
  };

  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      run(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`k6 run of ${o.script} did not finish in ${o.timeoutMs ?? 60_000} ms`)),
          o.timeoutMs ?? 60_000,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    for (const s of sockets) s.closeAll();
    await Promise.all(workers.map((w) => w.terminate()));
    rmSync(dir, { recursive: true, force: true });
  }
}

function percentile(sorted: number[], p: number): number {
  // k6: linear interpolation between the closest ranks.
  if (sorted.length === 1) return sorted[0]!;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** The aggregation a threshold expression names, or null when k6 would have no value (no samples). */
function aggregate(m: MetricDump | undefined, agg: string): number | null {
  const values = (m?.samples ?? []).map((s) => s.value);
  if (m?.type === 'counter' || (!m && agg === 'count')) return agg === 'count' ? values.reduce((a, b) => a + b, 0) : null;
  if (!values.length) return null;
  if (agg === 'rate') return values.filter((v) => v !== 0).length / values.length;
  if (agg === 'value') return values[values.length - 1]!;
  const sorted = [...values].sort((a, b) => a - b);
  if (agg === 'avg') return values.reduce((a, b) => a + b, 0) / values.length;
  if (agg === 'min') return sorted[0]!;
  if (agg === 'max') return sorted[sorted.length - 1]!;
  if (agg === 'med') return percentile(sorted, 50);
  const p = /^p\((\d+(?:\.\d+)?)\)$/.exec(agg);
  if (p) return percentile(sorted, Number(p[1]));
  throw new Error(`unsupported threshold aggregation ${agg}`);
}

export function evaluateThresholds(
  thresholds: Record<string, (string | { threshold: string })[]>,
  metrics: Map<string, MetricDump>,
): ThresholdOutcome[] {
  const out: ThresholdOutcome[] = [];
  for (const [metric, list] of Object.entries(thresholds)) {
    if (metric.includes('{')) throw new Error(`sub-metric thresholds (${metric}) are not supported by the shim`);
    for (const entry of list) {
      const expression = typeof entry === 'string' ? entry : entry.threshold;
      const m = /^\s*([a-z]+|p\(\d+(?:\.\d+)?\))\s*(<=|>=|==|===|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expression);
      if (!m) throw new Error(`cannot parse threshold ${metric}: ${expression}`);
      const value = aggregate(metrics.get(metric), m[1]!);
      const limit = Number(m[3]);
      // k6 passes a threshold whose metric got no samples (grafana/k6#4283): so does the shim.
      const ok =
        value === null ||
        {
          '<': value < limit,
          '<=': value <= limit,
          '>': value > limit,
          '>=': value >= limit,
          '==': value === limit,
          '===': value === limit,
          '!=': value !== limit,
        }[m[2]!]!;
      out.push({ metric, expression, value, ok });
    }
  }
  return out;
}
