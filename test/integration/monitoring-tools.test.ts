import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { alertRules, dashboard, dashboardQueries, MONITORING, withoutGrafanaVariables } from '../harness/promql.js';

/**
 * deploy/monitoring through the tools that read it, as processes: the Prometheus config, the alert
 * rules and their unit tests through promtool (Debian's `prometheus` package;
 * scripts/install-system-deps.sh installs it), the dashboard's queries through PromQL's parser, and
 * compose.yaml's monitoring profile through docker-compose. What the files say is
 * test/unit/monitoring.test.ts; that every metric named exists on a live node is
 * test/integration/monitoring-metrics.test.ts.
 */
const ROOT = join(import.meta.dirname, '../..');
const run = promisify(execFile);

const PROMTOOL = (process.env.PATH ?? '')
  .split(delimiter)
  .map((dir) => join(dir, 'promtool'))
  .find((p) => existsSync(p));
/** CI (.ci/run installs it) must not pass by skipping. */
const REQUIRE_PROMTOOL = process.env.CI === 'true' || process.env.CI === '1';

async function promtool(...args: string[]): Promise<{ ok: boolean; out: string }> {
  if (!PROMTOOL) throw new Error('promtool is not installed');
  try {
    const { stdout, stderr } = await run(PROMTOOL, args, { timeout: 20_000 });
    return { ok: true, out: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string; killed?: boolean };
    if (e.killed) throw new Error(`promtool ${args.join(' ')} timed out`);
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

/** Runs the test only where promtool is installed, and fails it in CI when it is not. */
const withPromtool = (name: string, fn: () => Promise<void>, timeoutMs = 20_000) =>
  it(name, { timeout: timeoutMs }, async (ctx) => {
    if (!PROMTOOL) {
      if (REQUIRE_PROMTOOL) throw new Error('promtool not found on PATH: scripts/install-system-deps.sh installs Debian\'s "prometheus"');
      ctx.skip('promtool is not installed (apt-get install -y prometheus); CI requires it');
      return;
    }
    await fn();
  });

describe('prometheus.yml', () => {
  it('passes `docker-compose -f compose.yaml --profile monitoring config -q`', async (ctx) => {
    const bin = ['/usr/bin/docker-compose', '/usr/local/bin/docker-compose'].find((p) => existsSync(p));
    if (!bin) {
      ctx.skip('docker-compose is not installed (apt-get install -y docker-compose)');
      return;
    }
    const { stderr } = await run(bin, ['-f', join(ROOT, 'compose.yaml'), '--profile', 'monitoring', 'config', '-q'], {
      cwd: ROOT,
      timeout: 30_000,
    });
    expect(stderr.trim()).toBe('');
  });

  withPromtool('passes `promtool check config` (which checks the rule files it loads too)', async () => {
    const r = await promtool('check', 'config', join(MONITORING, 'prometheus.yml'));
    expect(r.ok, r.out).toBe(true);
    expect(r.out).toMatch(/SUCCESS: 1 rule files found/);
  });
});

describe('alerts.yml', () => {
  const rules = alertRules();

  withPromtool('passes `promtool check rules`', async () => {
    const r = await promtool('check', 'rules', join(MONITORING, 'alerts.yml'));
    expect(r.ok, r.out).toBe(true);
  });

  withPromtool('passes its unit tests (`promtool test rules alerts.test.yml`)', async () => {
    const r = await promtool('test', 'rules', join(MONITORING, 'alerts.test.yml'));
    expect(r.ok, r.out).toBe(true);
  });

  describe('the unit tests catch a broken rule', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fluxo-alerts-'));
      await copyFile(join(MONITORING, 'alerts.test.yml'), join(dir, 'alerts.test.yml'));
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    /**
     * alerts.yml with rule `index`'s expr replaced, then the unit tests run against it. A mutant that
     * did not parse would fail them too, but without naming the alert: the callers check the name.
     */
    const testWith = async (index: number, mutate: (expr: string) => string) => {
      const doc = parse(readFileSync(join(MONITORING, 'alerts.yml'), 'utf8')) as { groups: { rules: { expr: string }[] }[] };
      const rule = doc.groups.flatMap((g) => g.rules)[index] as { expr: string };
      rule.expr = mutate(rule.expr.trim());
      await writeFile(join(dir, 'alerts.yml'), stringify(doc));
      return promtool('test', 'rules', join(dir, 'alerts.test.yml'));
    };
    const THRESHOLD = /\s*(==|!=|>=|<=|>|<)\s*[-+]?[0-9.]+(?:e[-+]?[0-9]+)?\s*$/i;

    withPromtool(
      'an alert that never fires, or that fires without its threshold, fails them',
      async () => {
        for (const [index, rule] of rules.entries()) {
          const never = await testWith(index, (expr) => `(${expr}) unless on() vector(1)`);
          expect(never.ok, `${rule.alert} (rule ${index}) made never to fire`).toBe(false);
          expect(never.out).toContain(`alertname: ${rule.alert}`);
          expect(rule.expr.trim(), `${rule.alert} ends with a threshold`).toMatch(THRESHOLD);
          const always = await testWith(index, (expr) => expr.replace(THRESHOLD, ''));
          expect(always.ok, `${rule.alert} (rule ${index}) without its threshold`).toBe(false);
          expect(always.out).toContain(`alertname: ${rule.alert}`);
        }
      },
      60_000,
    );
  });
});

describe('the Grafana dashboard', () => {
  withPromtool('has only queries PromQL parses (checked by promtool as recording rules)', async () => {
    const queries = dashboardQueries(dashboard());
    expect(queries.length).toBeGreaterThan(10);
    const dir = await mkdtemp(join(tmpdir(), 'fluxo-dashboard-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      const rules = queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: withoutGrafanaVariables(q.expr) }));
      await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const r = await promtool('check', 'rules', file);
      expect(r.ok, r.out).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
