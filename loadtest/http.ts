import autocannon, { type Client, type Request, type Result } from 'autocannon';
import type { Process } from '../shared/protocol.js';
import { createProcess, createWorkflow, mint, newRunId, nextStage, runTenant } from './setup.js';

/** HTTP scenarios, driven by autocannon as a library. */
export type HttpScenario = 'health' | 'read' | 'transition' | 'transition-rmw';
export const HTTP_SCENARIOS: readonly HttpScenario[] = ['health', 'read', 'transition', 'transition-rmw'];

export interface HttpOptions {
  url: string;
  secret: string;
  scenario: HttpScenario;
  /** Concurrent HTTP connections; each acts as its own user (rate limits are per user). */
  connections: number;
  durationS: number;
  /** Offered requests/s over all connections; 0 = flat out. */
  rate: number;
  /** Show autocannon's progress bar on stderr. */
  progress?: boolean;
}

export interface HttpResult {
  scenario: HttpScenario;
  options: Omit<HttpOptions, 'secret'>;
  tenant: string;
  requests: number;
  reqPerS: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Responses by status code, plus `errors` (socket errors) and `timeouts`. */
  statuses: Record<string, number>;
  non2xx: number;
}

/** Runs one scenario against a live Fluxo. The run's workflow and processes live in a tenant of their own. */
export async function runHttp(o: HttpOptions): Promise<HttpResult> {
  const tenant = runTenant(newRunId(), 0);
  const tokens = await Promise.all(Array.from({ length: o.connections }, (_, i) => mint(o.secret, `lt-http-${i}`, tenant, 'editor')));
  let processes: Process[] = [];
  let workflowId = '';
  if (o.scenario !== 'health') {
    workflowId = (await createWorkflow(o.url, await mint(o.secret, 'lt-admin', tenant, 'admin'))).id;
    // One process per connection, so writes never conflict with one another: a 409 means something else moved it.
    processes = await Promise.all(tokens.map((t, i) => createProcess(o.url, t, workflowId, `http ${i}`)));
  }
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
        // Read the version, then write with expectedVersion (optimistic concurrency).
        return [
          {
            method: 'GET',
            path: `/api/processes/${p.id}`,
            headers: auth,
            onResponse: (status, body, ctx) => {
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
          },
        ];
    }
  };
  let next = 0;
  const instance = autocannon({
    url: o.url,
    connections: o.connections,
    duration: o.durationS,
    ...(o.rate > 0 ? { overallRate: o.rate } : {}),
    requests: perClient(0),
    setupClient: (client: Client) => client.setRequests(perClient(next++ % o.connections)),
  });
  if (o.progress) autocannon.track(instance, { renderProgressBar: true, renderResultsTable: false });
  return toResult(o, tenant, await instance);
}

function toResult(o: HttpOptions, tenant: string, r: Result): HttpResult {
  const statuses: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats)) statuses[code] = s.count;
  if (r.errors) statuses.errors = r.errors;
  if (r.timeouts) statuses.timeouts = r.timeouts;
  const { secret: _s, ...shown } = o;
  return {
    scenario: o.scenario,
    options: shown,
    tenant,
    requests: r.requests.total,
    reqPerS: Math.round(r.requests.total / Math.max(0.001, r.duration)),
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.mean },
    statuses,
    non2xx: r.non2xx,
  };
}

export function formatHttp(r: HttpResult): string {
  const l = r.latencyMs;
  return [
    `${r.scenario}: ${r.requests} requests, ${r.reqPerS} req/s over ${r.options.connections} connections (tenant ${r.tenant})`,
    `latency  p50 ${l.p50} ms  p90 ${l.p90} ms  p99 ${l.p99} ms  max ${l.max} ms`,
    `status   ${Object.entries(r.statuses)
      .map(([k, v]) => `${k}: ${v}`)
      .join('  ')}`,
  ].join('\n');
}
