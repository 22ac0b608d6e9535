import { execSync } from 'node:child_process';
import os from 'node:os';
import { gitSha } from '../meta.js';

/**
 * One benchmark of `npm run bench`. Each suite parses its own flags, runs Fluxo and its baselines
 * side by side, and makes its own section of bench/RESULTS.md from the JSON it returned — so a
 * suite can be re-run alone without losing the others' committed figures.
 */
export interface Suite<R extends SuiteResult = SuiteResult> {
  name: string;
  /** One line for `npm run bench -- --help`. */
  summary: string;
  /** Its own `--help` text (flags after the suite name). */
  usage: string;
  run(args: SuiteArgs): Promise<R>;
  /** Its figures, for the terminal and for its `## …` section of bench/RESULTS.md (see report.ts). */
  section(result: R): Section;
}

export interface SuiteArgs {
  /** Seconds, not minutes: the CI smoke. */
  quick: boolean;
  /** Flags after the suite name (or all flags when every suite runs). */
  argv: string[];
  log(line: string): void;
}

/** What every suite's JSON carries, beside its own figures. */
export interface SuiteResult {
  suite: string;
  date: string;
  gitSha: string;
  machine: Machine;
  config: Record<string, unknown>;
  seconds: number;
  targets: TargetCheck[];
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  /** 1/5/15-minute load averages at the end: above ~2 on 2 cores, other work shared the machine. */
  loadAverage: number[];
  /** Open files a process may have (`ulimit -n`), which bounds the connection benchmarks. */
  openFilesLimit: number | null;
}

export interface TargetCheck {
  /** Who is measured, e.g. an engine id or "fluxo 2 nodes". */
  subject: string;
  target: string;
  /** What was measured, e.g. "1.12×" or "38 ms". */
  actual: string;
  met: boolean;
  /** How far off, when not met. */
  gap?: string;
}

export function machineInfo(): Machine {
  let openFilesLimit: number | null = null;
  try {
    openFilesLimit = Number(execSync('ulimit -n', { shell: '/bin/sh' }).toString().trim()) || null;
  } catch {}
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    openFilesLimit,
  };
}

/** The envelope of a result; `started` is Date.now() at the suite's start. */
export function envelope(suite: string, config: Record<string, unknown>, started: number, targets: TargetCheck[]): SuiteResult {
  return {
    suite,
    date: new Date().toISOString(),
    gitSha: gitSha(),
    machine: machineInfo(),
    config,
    seconds: Math.round((Date.now() - started) / 1000),
    targets,
  };
}

/** `a ≤ limit` (or `≥` when `atLeast`), with the gap in percent when missed. */
export function check(
  subject: string,
  what: string,
  value: number,
  limit: number,
  opts: { atLeast?: boolean; unit?: string } = {},
): TargetCheck {
  const unit = opts.unit ?? '×';
  const fmt = (x: number) => (unit === '×' ? `${x.toFixed(2)}×` : `${Number(x.toFixed(2)).toLocaleString('en')}${unit ? ` ${unit}` : ''}`);
  const met = opts.atLeast ? value >= limit : value <= limit;
  return {
    subject,
    target: `${what} ${opts.atLeast ? '≥' : '≤'} ${fmt(limit)}`,
    actual: fmt(value),
    met,
    ...(met
      ? {}
      : { gap: opts.atLeast ? `${((1 - value / limit) * 100).toFixed(0)} % short` : `${((value / limit - 1) * 100).toFixed(0)} % over` }),
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
}

/**
 * One row of medians over rounds: every numeric field by its median (null when a round had none),
 * the `sum` fields summed, anything else from the first round, and `round` 0.
 */
export function medianRow<T extends { round: number }>(rows: T[], sum: (keyof T)[] = []): T {
  const first = rows[0];
  if (!first) throw new Error('medianRow: no rounds');
  const out: Record<string, unknown> = { ...first };
  for (const k of Object.keys(first) as (keyof T & string)[]) {
    const values = rows.map((r) => r[k] as unknown);
    if (!values.every((v) => v === null || typeof v === 'number')) continue;
    if (sum.includes(k)) out[k] = values.reduce((n: number, v) => n + ((v as number | null) ?? 0), 0);
    else out[k] = values.some((v) => v === null) ? null : median(values as number[]);
  }
  return { ...(out as T), round: 0 };
}

/** Medians over rounds of the rows that share a key (in the order keys first appear), `sum` fields summed. */
export function mediansBy<T extends { round: number }>(rows: T[], key: (r: T) => string, sum: (keyof T)[] = []): T[] {
  const groups = new Map<string, T[]>();
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  return [...groups.values()].map((g) => medianRow(g, sum));
}

/** One bench suite's figures: printed after its run, and its `## …` section of bench/RESULTS.md. */
export interface Section {
  title: string;
  /** How it was measured, above the table (RESULTS.md only). */
  about?: string[];
  head: string[];
  rows: string[][];
  /** Columns left-aligned in the terminal. @default 1 */
  left?: number;
  /** What each engine (or case) of the table is. */
  legend?: { title: string; entries: [string, string][] };
  /** Lines below the table and legend, in both. */
  notes?: string[];
  /** RESULTS.md: a "### Targets (issue 4)" heading over the targets. */
  targetsHeading?: boolean;
}
