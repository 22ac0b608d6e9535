import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECRET } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { type K6RunResult, runK6 } from '../harness/k6/k6.js';
import { startNode } from '../harness/node.js';

// The k6 scripts driven as k6 drives them (test/harness/k6: init code once per VU in its own module
// instances, setup() once, its data passed to every VU) against a real node: all VUs must work in
// the run's one tenant, the work must succeed, and the thresholds must fail when it does not.
const KEY = 'k6-publish-key-0123456789abcdef';
const dir = new URL('../../loadtest/k6/', import.meta.url);
let node: FluxoNode;
let env: Record<string, string>;

beforeAll(async () => {
  node = await startNode({
    PUBLISH_API_KEY: KEY,
    RATE_LIMITS:
      'handshake=100000/1,publish=100000/1,subscribe=100000/1,process:transition=100000/1,http:write=100000/1,http:read=100000/1',
  });
  // The work is checked here, not the speed (that is `npm run bench`): a loaded machine must not fail the latency bound.
  env = { FLUXO_URL: node.url, JWT_SECRET: TEST_SECRET, P95_MS: '60000' };
});
afterAll(() => node?.close());

/** Every VU (and setup, VU 0) used tokens of the one tenant setup() made, and nothing else. */
function expectOneTenant(r: K6RunResult, vus: number): void {
  const [tenant, ...more] = r.tenantsByVu.get(0) ?? [];
  expect(more).toEqual([]);
  expect(tenant).toMatch(/^lt-k6[a-z0-9]+-0$/);
  expect([...r.tenantsByVu.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: vus + 1 }, (_, i) => i));
  for (const [vu, tenants] of r.tenantsByVu) expect({ vu, tenants: [...tenants] }).toEqual({ vu, tenants: [tenant] });
}

const failedThresholds = (r: K6RunResult) => r.thresholds.filter((t) => !t.ok).map((t) => `${t.metric}: ${t.expression}`);

describe('k6 scripts run as k6 runs them', () => {
  it('http-read.js: every VU reads the run list, which holds the run processes', async () => {
    const r = await runK6({ dir, script: 'http-read.js', env: { ...env, PROCESSES: '7' }, vus: 3, iterations: 3 });
    expectOneTenant(r, 3);
    expect(r.errors).toEqual([]);
    const reads = r.requests.filter((q) => q.vu > 0);
    expect(reads).toHaveLength(9);
    expect(reads.every((q) => q.status === 200 && q.path.includes((r.setupData as { workflowId: string }).workflowId))).toBe(true);
    expect(r.checks).toEqual({ 'list 200': { passes: 9, fails: 0 }, "list holds the run's processes": { passes: 9, fails: 0 } });
    expect(failedThresholds(r)).toEqual([]);
    expect(r.exitCode).toBe(0);
  });

  it('http-read.js fails its thresholds when the list read is of another tenant (200, empty)', async () => {
    const r = await runK6({
      dir,
      script: 'http-read.js',
      env,
      vus: 2,
      iterations: 2,
      alterSetupData: (d) => ({ ...(d as object), tenant: 'lt-someone-else-0' }),
    });
    // Every read "succeeds" at the HTTP level …
    expect(r.requests.filter((q) => q.vu > 0).every((q) => q.status === 200)).toBe(true);
    // … and still the run fails.
    expect(r.checks["list holds the run's processes"]).toEqual({ passes: 0, fails: 4 });
    expect(failedThresholds(r)).toEqual(['checks: rate>0.99']);
    expect(r.exitCode).toBe(99);
  });

  it.each([
    ['blind writes', {}],
    ['read-modify-write', { RMW: '1' }],
  ])('http-transition.js, %s: every VU moves its own process of the run', async (_name, extra) => {
    const r = await runK6({ dir, script: 'http-transition.js', env: { ...env, VUS: '3', ...extra }, vus: 3, iterations: 4 });
    expectOneTenant(r, 3);
    expect(r.errors).toEqual([]);
    const writes = r.requests.filter((q) => q.vu > 0 && q.method === 'POST');
    expect(writes).toHaveLength(12);
    expect(writes.every((q) => q.status === 200)).toBe(true);
    // Each VU its own process.
    const ids = (r.setupData as { ids: string[] }).ids;
    for (const vu of [1, 2, 3])
      expect(new Set(writes.filter((q) => q.vu === vu).map((q) => q.path))).toEqual(new Set([`/api/processes/${ids[vu - 1]}/transition`]));
    expect(r.checks['moved where asked']).toEqual({ passes: 12, fails: 0 });
    if ('RMW' in extra) expect(r.metrics.get('fluxo_rmw_duration')?.samples).toHaveLength(12);
    expect(failedThresholds(r)).toEqual([]);
    expect(r.exitCode).toBe(0);
  });

  it('http-transition.js fails its thresholds when the VUs write in another tenant (404)', async () => {
    const r = await runK6({
      dir,
      script: 'http-transition.js',
      env: { ...env, VUS: '2' },
      vus: 2,
      iterations: 2,
      alterSetupData: (d) => ({ ...(d as object), tenant: 'lt-someone-else-0' }),
    });
    expect(r.requests.filter((q) => q.vu > 0 && q.method === 'POST').every((q) => q.status === 404)).toBe(true);
    expect(failedThresholds(r)).toEqual(['http_req_failed: rate<0.01', 'checks: rate>0.99']);
    expect(r.exitCode).toBe(99);
  });

  it('ws-fanout.js: every subscriber joins the run tenant and receives the publisher events', async () => {
    const r = await runK6({
      dir,
      script: 'ws-fanout.js',
      env: { ...env, PUBLISH_API_KEY: KEY, HOLD_MS: '4000', PUBLISH_AFTER_MS: '1000', PUBLISH_EVERY_MS: '100' },
      vus: 3,
      iterations: 1,
    });
    expectOneTenant(r, 3);
    expect(r.errors).toEqual([]);
    expect(r.checks['upgraded 101']).toEqual({ passes: 3, fails: 0 });
    expect(r.checks.subscribed).toEqual({ passes: 3, fails: 0 });
    expect(r.checks["received the run's events"]).toEqual({ passes: 3, fails: 0 });
    expect(r.checks['publish 201']!.passes).toBeGreaterThan(5);
    // Every subscriber got every event VU 1 published (one node, nothing lost).
    expect(r.metrics.get('fluxo_events_received')!.samples).toHaveLength(3 * r.checks['publish 201']!.passes);
    expect(failedThresholds(r)).toEqual([]);
    expect(r.exitCode).toBe(0);
  });

  it('ws-fanout.js stops in setup() without the publish API key', async () => {
    await expect(runK6({ dir, script: 'ws-fanout.js', env, vus: 1, iterations: 1 })).rejects.toThrow(/PUBLISH_API_KEY/);
  });
});
