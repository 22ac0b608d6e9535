import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { alertRules, dashboard, MONITORING, metricNames, panelsOf } from '../harness/promql.js';

/**
 * deploy/monitoring as files: the Prometheus config against compose.yaml, the alert rules against
 * the README and their unit tests, and the dashboard's shape. Through the tools that read them
 * (promtool, docker-compose: processes) is test/integration/monitoring-tools.test.ts; that every
 * metric named exists on a live node is test/integration/monitoring-metrics.test.ts.
 */
const ROOT = join(import.meta.dirname, '../..');

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
      'FluxoEventsSentLate',
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
});
