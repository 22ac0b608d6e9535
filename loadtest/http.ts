import net from 'node:net';
import autocannon, { type Client, type Request } from 'autocannon';
import { createBoard, createProcess } from '../scripts/topology/fixtures.js';
import { token } from '../scripts/topology/tokens.js';
import type { Process } from '../shared/protocol.js';
import { type RunMeta, type Threshold, targetInfo, toolInfo } from './meta.js';
import { formatCounts, formatLatency, formatThresholds } from './report.js';
import { newRunId, nextStage, runTenant } from './setup.js';
import { type LatencySummary, newHistogram, recordUs, summarize } from './stats.js';

/** HTTP load, driven by autocannon as a library: the scenarios of `npm run loadtest` and the write-path suite's load. */
export type HttpScenario = 'health' | 'read' | 'transition' | 'transition-rmw';

export interface HttpOptions {
  url: string;
  secret: string;
  scenario: HttpScenario;
  /** Concurrent HTTP connections; each acts as its own user (rate limits are per user). */
  connections: number;
  durationS: number;
  /** Offered requests/s over all connections; 0 = flat out. */
  rate: number;
  /** Threshold: latency p99 (of operations, for transition-rmw) at most this many ms. */
  maxP99Ms?: number;
  /** Show autocannon's progress bar on stderr. */
  progress?: boolean;
}

export interface HttpResult extends RunMeta {
  scenario: HttpScenario;
  options: Omit<HttpOptions, 'secret'>;
  tenant: string;
  durationS: number;
  /** HTTP requests sent and answered (transition-rmw: a GET and a POST per operation). */
  requests: number;
  reqPerS: number;
  /** Responses by HTTP status code. */
  statuses: Record<string, number>;
  non2xx: number;
  /** Requests that got no response: socket errors (timeouts included), by kind. */
  errors: number;
  errorsByKind: Record<string, number>;
  timeouts: number;
  /** Response bytes received (headers and bodies). */
  bytes: { received: number; perS: number };
  /** Latency of each request, ms to the µs: p50 ≤ p90 ≤ p99 ≤ p99.9 ≤ max. */
  latencyMs: LatencySummary;
  /** transition-rmw: each GET + POST pair is one logical operation, timed from the GET's start to the POST's response. */
  operations?: { kind: 'read-modify-write'; count: number; perS: number; ok: number; failed: number; latencyMs: LatencySummary };
  thresholds: Threshold[];
}

/** Runs one scenario against a live Fluxo. The run's workflow and processes live in a tenant of their own. */
export async function runHttp(o: HttpOptions): Promise<HttpResult> {
  const tenant = runTenant(newRunId(), 0);
  const tokens = await Promise.all(
    Array.from({ length: o.connections }, (_, i) => token({ sub: `lt-http-${i}`, tid: tenant, role: 'editor', secret: o.secret })),
  );
  let processes: Process[] = [];
  let workflowId = '';
  if (o.scenario !== 'health') {
    workflowId = (await createBoard(o.url, await token({ sub: 'lt-admin', tid: tenant, role: 'admin', secret: o.secret }))).id;
    // One process per connection, so writes never conflict with one another: a 409 means something else moved it.
    processes = await Promise.all(tokens.map((t, i) => createProcess(o.url, t, workflowId, `http ${i}`)));
  }
  const target = await targetInfo(o.url);
  const opLatency = newHistogram();
  const ops = { ok: 0, failed: 0 };
  const json = { 'content-type': 'application/json' };
  const perClient = (i: number): Request[] => {
    const auth = { authorization: `Bearer ${tokens[i]}` };
    const p = processes[i]!;
    const transitionPath = `/api/processes/${p?.id}/transition`;
    switch (o.scenario) {
      case 'health':
        return [{ method: 'GET', path: '/health' }];
      case 'read':
        return [{ method: 'GET', path: `/api/processes?workflowId=${workflowId}&limit=50`, headers: auth }];
      case 'transition':
        // Blind writes: alternate todo → doing → todo without expectedVersion.
        return ['doing', 'todo'].map((to) => ({
          method: 'POST',
          path: transitionPath,
          headers: { ...auth, ...json },
          body: JSON.stringify({ to }),
        }));
      case 'transition-rmw':
        // Read the version, then write with expectedVersion (optimistic concurrency): one operation.
        return [
          {
            method: 'GET',
            path: `/api/processes/${p.id}`,
            headers: auth,
            setupRequest: (req, ctx) => {
              ctx.opStart = performance.now();
              return req;
            },
            onResponse: (status, body, ctx) => {
              ctx.readOk = status === 200;
              if (status !== 200) return;
              const proc = (JSON.parse(body) as { data: Process }).data;
              ctx.version = proc.version;
              ctx.stage = proc.stage;
            },
          },
          {
            method: 'POST',
            path: transitionPath,
            headers: { ...auth, ...json },
            setupRequest: (req, ctx) => ({
              ...req,
              body: JSON.stringify({ to: nextStage(String(ctx.stage ?? p.stage)), expectedVersion: Number(ctx.version ?? p.version) }),
            }),
            onResponse: (status, _body, ctx) => {
              if (typeof ctx.opStart === 'number') recordUs(opLatency, (performance.now() - ctx.opStart) * 1000);
              if (ctx.readOk && status === 200) ops.ok++;
              else ops.failed++;
            },
          },
        ];
    }
  };
  const { result: r, latency, errorsByKind, statuses } = await drive({ ...o, requests: perClient });
  const { secret: _s, ...shown } = o;
  const durationS = Math.max(0.001, r.duration);
  const result: HttpResult = {
    tool: toolInfo('autocannon'),
    target,
    startedAt: new Date(r.start).toISOString(),
    finishedAt: new Date(r.finish).toISOString(),
    scenario: o.scenario,
    options: shown,
    tenant,
    durationS: r.duration,
    requests: r.requests.total,
    reqPerS: Math.round(r.requests.total / durationS),
    statuses,
    non2xx: r.non2xx,
    errors: r.errors,
    errorsByKind,
    timeouts: r.timeouts,
    bytes: { received: r.throughput.total, perS: Math.round(r.throughput.total / durationS) },
    latencyMs: summarize(latency),
    ...(o.scenario === 'transition-rmw'
      ? {
          operations: {
            kind: 'read-modify-write' as const,
            count: ops.ok + ops.failed,
            perS: Math.round((ops.ok + ops.failed) / durationS),
            ok: ops.ok,
            failed: ops.failed,
            latencyMs: summarize(opLatency),
          },
        }
      : {}),
    thresholds: [],
  };
  result.thresholds = httpThresholds(result);
  return result;
}

/** Met when every request was answered 2xx (and every operation succeeded), and within --max-p99. */
export function httpThresholds(r: HttpResult): Threshold[] {
  const t: Threshold[] = [
    { name: 'requests answered', condition: '> 0', actual: String(r.requests), ok: r.requests > 0 },
    { name: 'transport errors', condition: '= 0', actual: formatCounts(r.errorsByKind), ok: r.errors === 0 },
    { name: 'non-2xx responses', condition: '= 0', actual: String(r.non2xx), ok: r.non2xx === 0 },
  ];
  if (r.operations)
    t.push({ name: 'failed operations', condition: '= 0', actual: String(r.operations.failed), ok: r.operations.failed === 0 });
  if (r.options.maxP99Ms !== undefined) {
    const p99 = (r.operations ?? r).latencyMs.p99;
    t.push({
      name: `${r.operations ? 'operation' : 'request'} latency p99`,
      condition: `≤ ${r.options.maxP99Ms} ms`,
      actual: `${p99} ms`,
      ok: p99 <= r.options.maxP99Ms,
    });
  }
  return t;
}

export function formatHttp(r: HttpResult): string {
  const lines = [
    `${r.scenario}: ${r.requests} requests, ${r.reqPerS} req/s over ${r.options.connections} connections in ${r.durationS} s (tenant ${r.tenant})`,
    `started  ${r.startedAt}  finished ${r.finishedAt}  (${r.tool.name} ${r.tool.version} ${r.tool.commit.slice(0, 12)}, ${r.tool.engine})`,
    `latency  ${formatLatency(r.latencyMs)}`,
  ];
  if (r.operations)
    lines.push(
      `ops      ${r.operations.count} read-modify-write operations (GET + POST), ${r.operations.perS}/s, ${r.operations.failed} failed`,
      `op lat.  ${formatLatency(r.operations.latencyMs)}`,
    );
  lines.push(
    `status   ${Object.entries(r.statuses)
      .map(([k, v]) => `${k}: ${v}`)
      .join('  ')}`,
    `errors   ${formatCounts(r.errorsByKind)}  (timeouts ${r.timeouts})`,
    `bytes    ${r.bytes.received} received (${r.bytes.perS}/s)`,
    `thresholds ${r.thresholds.every((t) => t.ok) ? 'met' : 'NOT met'}`,
    formatThresholds(r.thresholds),
  );
  return lines.join('\n');
}

export interface DriveOptions {
  url: string;
  connections: number;
  /** Unmeasured load before the window: nothing is counted until it has passed. @default 0 */
  warmupS?: number;
  durationS: number;
  /** Offered requests/s over all connections; 0 = flat out. */
  rate: number;
  requests(connection: number): Request[];
  /** Connection i binds to entry i % length (nginx ip_hash routes by the client's /24); none: the OS default. */
  localAddresses?: string[];
  /** Responses whose latency is recorded. @default every one */
  timed?(status: number): boolean;
  /** Called as the window opens (a caller samples CPU and counters). */
  onWindow?(): void;
  progress?: boolean;
}

/**
 * One autocannon run whose first `warmupS` are not counted (stopping and restarting autocannon
 * would leave requests in flight that the next run does not know of). Answers autocannon's own
 * summary, and of the window: its length, responses by status, requests that got no response by
 * error code, and the latency of each timed response to the µs (autocannon's histogram holds whole ms).
 */
export async function drive(d: DriveOptions) {
  let next = 0;
  const addresses = d.localAddresses ?? [];
  const instance = autocannon({
    url: d.url,
    connections: d.connections,
    duration: (d.warmupS ?? 0) + d.durationS,
    ...(d.rate > 0 ? { overallRate: d.rate } : {}),
    requests: d.requests(0),
    setupClient: (client: Client) => {
      const i = next++ % d.connections;
      client.setRequests(d.requests(i));
      if (addresses.length) bindClient(client, addresses[i % addresses.length]!);
    },
  });
  const latency = newHistogram();
  const statuses: Record<string, number> = {};
  const errorsByKind: Record<string, number> = {};
  let opened = -1;
  const open = () => {
    opened = performance.now();
    d.onWindow?.();
  };
  let timer: NodeJS.Timeout | undefined;
  if (d.warmupS) timer = setTimeout(open, d.warmupS * 1000);
  else open();
  instance.on('response', (_client, status, _bytes, ms) => {
    if (opened < 0) return;
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (d.timed?.(status) ?? true) recordUs(latency, ms * 1000);
  });
  instance.on('reqError', (err: Error & { code?: string }) => {
    if (opened < 0) return;
    const kind = err.code ?? err.message.slice(0, 80);
    errorsByKind[kind] = (errorsByKind[kind] ?? 0) + 1;
  });
  if (d.progress) autocannon.track(instance, { renderProgressBar: true, renderResultsTable: false });
  try {
    const result = await instance;
    if (opened < 0) throw new Error('the load ended before its measured window opened');
    return { result, seconds: (performance.now() - opened) / 1000, statuses, errorsByKind, latency };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * autocannon connects with `net.connect(port, host)` and has no option for a source address. Each
 * client's `_connect` (also used on reconnect) is wrapped so that, during that synchronous call,
 * `net.connect` binds `localAddress`. Only this client's connects are affected.
 */
export function bindClient(client: Client, localAddress: string): void {
  const c = client as unknown as { _connect(): void };
  const original = Object.getPrototypeOf(c)._connect as () => void;
  c._connect = function (this: unknown) {
    const connect = net.connect;
    net.connect = ((port: number, host: string) => connect({ port, host, localAddress })) as typeof net.connect;
    try {
      original.call(this);
    } finally {
      net.connect = connect;
    }
  };
}
