import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { alertRules, dashboard, dashboardQueries, MONITORING, metricNames, panelsOf, withoutGrafanaVariables } from '../harness/promql.js';

/**
 * deploy/monitoring: the Prometheus config against compose.yaml, the alert rules and their unit
 * tests through promtool (Debian's `prometheus` package; scripts/install-system-deps.sh installs
 * it), and the dashboard's shape. That every metric named exists on a live node is
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

describe('PromQL metric-name tokenizer', () => {
  it('finds the selected metrics, not functions, labels, keywords, numbers or durations', () => {
    expect(
      metricNames(
        'sum by (node) (rate(a_total{status=~"5..", x="y}"}[5m])) / clamp_min(sum without (le) (rate(b_count[$__rate_interval] offset 1h)), 1e-9) > 0.05',
      ).sort(),
    ).toEqual(['a_total', 'b_count']);
    expect(metricNames('histogram_quantile(0.95, sum(rate(h_bucket[5m])) by (le)) > bool 0.25')).toEqual(['h_bucket']);
    expect(metricNames('x * on(node) group_left(role) y unless z{a="b"} or vector(1)').sort()).toEqual(['x', 'y', 'z']);
    expect(metricNames('label_replace(up, "dst", "$1", "instance", "(.*)") == 0 # comment with words')).toEqual(['up']);
  });
});

describe('prometheus.yml', () => {
  const prom = parse(readFileSync(join(MONITORING, 'prometheus.yml'), 'utf8')) as {
    rule_files: string[];
    scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
  };
  const compose = parse(readFileSync(join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, string>; volumes?: string[]; profiles?: string[]; ports?: string[] }>;
  };

  it('scrapes every Fluxo node of compose.yaml on its PORT, and nothing that is not one', () => {
    const nodes = Object.entries(compose.services).filter(([name]) => /^fluxo-\d+$/.test(name));
    expect(nodes.length).toBeGreaterThan(0);
    const fluxo = prom.scrape_configs.find((s) => s.job_name === 'fluxo');
    expect(fluxo?.metrics_path ?? '/metrics').toBe('/metrics');
    const targets = (fluxo?.static_configs ?? []).flatMap((s) => s.targets).sort();
    expect(targets).toEqual(nodes.map(([name, s]) => `${name}:${s.environment?.PORT ?? '8080'}`).sort());
  });

  it('is what the monitoring profile mounts, with the rule files next to it', () => {
    const service = compose.services.prometheus;
    expect(service?.profiles).toEqual(['monitoring']);
    const mounts = new Map(
      (service?.volumes ?? []).map((v) => {
        const [host, container] = v.split(':') as [string, string];
        return [container, resolve(ROOT, host)];
      }),
    );
    // The image reads /etc/prometheus/prometheus.yml; rule files resolve relative to it.
    expect(mounts.get('/etc/prometheus/prometheus.yml')).toBe(join(MONITORING, 'prometheus.yml'));
    expect(prom.rule_files.length).toBeGreaterThan(0);
    for (const file of prom.rule_files) {
      expect(mounts.get(join('/etc/prometheus', file)), `${file} is mounted`).toBe(join(MONITORING, file));
      expect(existsSync(join(MONITORING, file)), `${file} exists`).toBe(true);
    }
    for (const host of mounts.values()) expect(existsSync(host), `${host} exists`).toBe(true);
    // Grafana: its provisioning and dashboards, pointing at the prometheus service.
    for (const v of compose.services.grafana?.volumes ?? []) expect(existsSync(resolve(ROOT, v.split(':')[0] as string)), v).toBe(true);
    const ds = parse(readFileSync(join(MONITORING, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as {
      datasources: { url: string; type: string }[];
    };
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
  });

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
  const tests = parse(readFileSync(join(MONITORING, 'alerts.test.yml'), 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
  };
  const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);

  it('has the alerts the README documents, each a severity and a summary', () => {
    const names = new Set(rules.map((r) => r.alert));
    for (const name of [
      'FluxoNodeDown',
      'FluxoReplicaDown',
      'FluxoReplicaLag',
      'FluxoRedisDisconnected',
      'FluxoHighErrorRate',
      'FluxoHighLatencyP95',
      'FluxoFanoutSlow',
      'FluxoRateLimitSurge',
      'FluxoPartitionsNotPremade',
    ]) {
      expect(names.has(name), name).toBe(true);
    }
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const r of rules) {
      expect(r.labels?.severity, r.alert).toMatch(/^(page|warn)$/);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(readme, `README documents ${r.alert}`).toContain(r.alert);
    }
  });

  it('has unit tests in which every alert fires, and in which it does not', () => {
    for (const name of new Set(rules.map((r) => r.alert))) {
      expect(
        cases.some((c) => c.alertname === name && (c.exp_alerts?.length ?? 0) > 0),
        `${name} is shown to fire`,
      ).toBe(true);
      expect(
        cases.some((c) => c.alertname === name && (c.exp_alerts?.length ?? 0) === 0),
        `${name} is shown not to fire`,
      ).toBe(true);
    }
  });

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
  const d = dashboard();
  const panels = panelsOf(d);

  it('has a data-source variable that every panel and query uses', () => {
    const ds = d.templating.list.find((v) => v.type === 'datasource');
    expect(ds).toMatchObject({ name: 'datasource', query: 'prometheus' });
    // Grafana's variable syntax, not a template string.
    const variable = '$' + '{datasource}';
    for (const p of panels) {
      if (p.type === 'row') continue;
      expect(p.datasource?.uid, p.title).toBe(variable);
      for (const t of p.targets ?? []) expect(t.datasource?.uid, `${p.title} ${t.refId}`).toBe(variable);
    }
  });

  it('has a node (instance) variable that every query filters on', () => {
    const node = d.templating.list.find((v) => v.name === 'node');
    expect(node).toMatchObject({ type: 'query', multi: true, includeAll: true });
    expect(node?.definition).toMatch(/^label_values\(up\{job="fluxo"\}, instance\)$/);
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        // Every metric of the query has a matcher, and every matcher filters on the variable.
        const selectors = t.expr?.match(/\{[^}]*\}/g) ?? [];
        expect(selectors.length, `${p.title}: ${t.expr}`).toBeGreaterThanOrEqual(metricNames(t.expr ?? '').length);
        for (const s of selectors) expect(s, `${p.title}: ${t.expr}`).toContain('instance=~"$node"');
      }
    }
  });

  it('has error-rate, memory and event-loop-lag panels besides the others', () => {
    const uses = (re: RegExp) => panels.filter((p) => p.targets?.some((t) => re.test(t.expr ?? ''))).map((p) => p.title);
    expect(uses(/http_request_duration_seconds_count\{[^}]*status=~"5\.\."/)).not.toEqual([]);
    expect(uses(/process_resident_memory_bytes/)).not.toEqual([]);
    expect(uses(/nodejs_heap_size_used_bytes/)).not.toEqual([]);
    expect(uses(/nodejs_eventloop_lag_\w+_seconds/)).not.toEqual([]);
    for (const name of [
      'ws_connections_active',
      'db_replica_up',
      'db_replica_lag_seconds',
      'redis_connected',
      'http_limit_refusals_total',
      'ws_limit_refusals_total',
    ]) {
      expect(uses(new RegExp(`\\b${name}\\b`)), name).not.toEqual([]);
    }
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
  });

  withPromtool('has only queries PromQL parses (checked by promtool as recording rules)', async () => {
    const queries = dashboardQueries(d);
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
