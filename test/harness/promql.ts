import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export const MONITORING = join(import.meta.dirname, '../../deploy/monitoring');

/** Words of PromQL that are not metric names when not followed by `(`. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2', 'start', 'end']);
/** Followed by a parenthesised list of label names, not of expressions. */
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The metric names a PromQL expression selects (e.g. `rate(x_total{a="b"}[5m]) / y` → x_total, y).
 * A small tokenizer, not a parser: skips strings, label matchers `{…}`, ranges `[…]`, comments,
 * numbers and durations, function and aggregation names (an identifier followed by `(`), keywords,
 * and the label lists of by/without/on/ignoring/group_left/group_right. Grafana variables (`$node`,
 * `${x}`, `[$__rate_interval]`) are only ever inside matchers or ranges in Fluxo's dashboard.
 * A selector with no name (`{__name__="x"}`) is not recognised.
 */
export function metricNames(expr: string): string[] {
  const names = new Set<string>();
  let i = 0;
  const n = expr.length;
  const skipString = (quote: string) => {
    i++;
    while (i < n && expr[i] !== quote) i += expr[i] === '\\' ? 2 : 1;
    i++;
  };
  /** From an opening bracket to past its closing one, strings inside skipped. */
  const skipGroup = (open: string, close: string) => {
    let depth = 0;
    while (i < n) {
      const c = expr[i] as string;
      if (c === '"' || c === "'" || c === '`') {
        skipString(c);
        continue;
      }
      if (c === open) depth++;
      else if (c === close && --depth === 0) {
        i++;
        return;
      }
      i++;
    }
    throw new Error(`unbalanced ${open}${close} in: ${expr}`);
  };
  const nextNonSpace = (from: number) => {
    let j = from;
    while (j < n && /\s/.test(expr[j] as string)) j++;
    return j;
  };
  while (i < n) {
    const c = expr[i] as string;
    if (c === '"' || c === "'" || c === '`') skipString(c);
    else if (c === '{') skipGroup('{', '}');
    else if (c === '[') skipGroup('[', ']');
    else if (c === '#') while (i < n && expr[i] !== '\n') i++;
    else if (/[0-9.]/.test(c)) {
      // A number (1e-9, 0x1f, 0.95) or a duration (5m, 1h30m).
      const m = /^(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?[a-zA-Z0-9]*)/.exec(expr.slice(i));
      i += m ? (m[0] as string).length : 1;
    } else if (/[a-zA-Z_:]/.test(c)) {
      const word = (/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i)) as RegExpExecArray)[0];
      i += word.length;
      const next = nextNonSpace(i);
      if (GROUPING.has(word)) {
        // `on`, `group_left` may stand without a list (`group_left` alone); by/without always have one.
        if (expr[next] === '(') {
          i = next;
          skipGroup('(', ')');
        }
      } else if (expr[next] === '(' || /^(by|without)\b/.test(expr.slice(next))) {
        // A function or an aggregation (`sum by (x) (…)` too): its arguments are scanned as they come.
      } else if (!KEYWORDS.has(word.toLowerCase())) {
        names.add(word);
      }
    } else if (c === '$') {
      // A Grafana variable outside a matcher or range: not a metric.
      i++;
      if (expr[i] === '{') skipGroup('{', '}');
      else while (i < n && /[\w]/.test(expr[i] as string)) i++;
    } else i++;
  }
  return [...names];
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function alertRules(file = join(MONITORING, 'alerts.yml')): AlertRule[] {
  const doc = parse(readFileSync(file, 'utf8')) as { groups: { rules: AlertRule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

interface Target {
  expr?: string;
  refId?: string;
}
interface Panel {
  id: number;
  title: string;
  type: string;
  datasource?: { type?: string; uid?: string };
  targets?: (Target & { datasource?: { type?: string; uid?: string } })[];
  panels?: Panel[];
}
export interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown; definition?: string; datasource?: unknown }[] };
}

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(join(MONITORING, 'grafana/dashboards/fluxo.json'), 'utf8')) as Dashboard;
}

/** Every panel of the dashboard, those inside collapsed rows included. */
export function panelsOf(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL query of the dashboard: panel targets and the query variables (`label_values(expr, label)` → expr). */
export function dashboardQueries(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of panelsOf(d)) {
    for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}" ${t.refId ?? ''}`, expr: t.expr });
  }
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : ((v.query as { query?: string } | undefined)?.query ?? v.definition ?? '');
    const m = /^\s*label_values\(\s*(.*),\s*[a-zA-Z_]\w*\s*\)\s*$/s.exec(q);
    out.push({ where: `variable $${v.name}`, expr: m ? (m[1] as string) : q });
  }
  return out;
}

/** Grafana's built-in variables and the dashboard's own, replaced by values PromQL accepts. */
export function withoutGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$\{__rate_interval\}|\$\{__interval\}/g, '1m')
    .replace(/\$__range|\$\{__range\}/g, '1h')
    .replace(/\$\{?\w+\}?/g, '.*');
}

/** Series Prometheus makes itself for every target (not in a node's /metrics). */
export const SCRAPE_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_samples_post_metric_relabeling']);

/** Names of the samples of a Prometheus text exposition (histograms give their _bucket/_sum/_count). */
export function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{|\s)/.exec(line);
    if (m) names.add(m[1] as string);
  }
  return names;
}
