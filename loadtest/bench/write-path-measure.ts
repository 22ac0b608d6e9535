import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLUSTER_SECRET } from '../../scripts/topology/cluster.js';
import { token } from '../../scripts/topology/tokens.js';
import type { LatencySummary } from '../stats.js';
import { cpuDelta, postmasterPid, redisPid, treeCpuMicros } from './proc-cpu.js';
import { drain, type LoadResult, type LoadSpec, missingFrom, runTransitions, type Subscriber } from './write-path-load.js';

/**
 * One measured level of the write-path suite, whatever serves it: Fluxo's nodes or the tutorial
 * stack. Both get the same load, their acked transitions are checked the same way (in the log, at
 * every subscriber) and their CPU is read from the same kinds of process trees.
 */

/** How long fan-out may trail the last ack before a missing event counts as lost. */
const DRAIN_MS = 5_000;

export interface WritePathLevel {
  /** What served it: `fluxo` or a baseline's id. Absent in results written before baselines. */
  server?: string;
  nodes: number;
  seconds: number;
  /** Transitions acked with 200 in the measured window. */
  committed: number;
  committedPerS: number;
  /** Of those, received by the subscriber on every node; the figure the target is about. */
  fannedOutPerS: number;
  latencyMs: LoadResult['latencyMs'];
  statuses: Record<string, number>;
  /** 409s (version conflicts; only `rmw` with shared processes makes them). */
  conflicts: number;
  /** Everything neither 200 nor 409: other statuses, socket errors, timeouts. */
  failures: number;
  /** Transition requests each node answered in the window (Fluxo: from its /metrics). */
  perNode: { node: string; requests: number }[];
  subscribers: { node: string; missing: number; lagMs: LatencySummary }[];
  /**
   * Over warm-up and window: transitions acked, how many of them the event log holds (all, or the
   * store acked before commit), and its rows in all (more: in flight when the load stopped).
   */
  persisted: { acked: number; ackedInLog: number; rows: number };
  /** Server CPU: µs per committed transition over all server processes, and % of one core per part. */
  cpu: { usPerTransition: number; corePct: Record<string, number>; loadGeneratorPct: number };
}

/** A running system the load is pointed at, ready to measure. */
export interface Target {
  server: string;
  /** Node ids, in the order of `served()`. */
  nodes: string[];
  /** The load's part of the spec: what to call and as whom (nginx's URL, tokens, processes, source addresses). */
  load: Pick<LoadSpec, 'url' | 'tokens' | 'processes' | 'localAddresses'>;
  subscribers: Subscriber[];
  /** Process trees whose CPU counts, by part: the app's node(s), then {@link infraRoots}. */
  roots: Record<string, number>;
  /** Transition requests each node has answered so far; without it the load's own count stands for its one node. */
  served?: () => Promise<number[]>;
  /** Of `acked` (event ids), how many the log holds; `rows`: every transition of the run in it. */
  inLog(acked: number[]): Promise<{ rows: number; acked: number }>;
}

export type LoadShape = Pick<LoadSpec, 'connections' | 'warmupS' | 'durationS' | 'rate' | 'mode'>;

/** The parts every target shares, keyed the same for Fluxo and the baselines: nginx, Redis, Postgres. */
export async function infraRoots(nginxDir: string, redisPort: number, postgresUrl: string): Promise<Record<string, number>> {
  return {
    nginx: Number(readFileSync(join(nginxDir, 'nginx.pid'), 'utf8').trim()),
    redis: await redisPid(redisPort),
    postgres: await postmasterPid(postgresUrl),
  };
}

/** A token per connection: `users` editors of `tenant`, cycled over the connections — the same for every target. */
export async function userTokens(tenant: string, users: number, connections: number): Promise<string[]> {
  const minted = await Promise.all(
    Array.from({ length: users }, (_, i) => token({ sub: `wp-${i}`, tid: tenant, role: 'editor', secret: CLUSTER_SECRET })),
  );
  return Array.from({ length: connections }, (_, i) => minted[i % minted.length]!);
}

export async function measureLevel(t: Target, shape: LoadShape, log: (l: string) => void): Promise<WritePathLevel> {
  let cpu0: Record<string, number> = {};
  let self0 = process.cpuUsage();
  let served0: Promise<number[]> = Promise.resolve([]);
  const load = await runTransitions({
    ...t.load,
    // Picked, not spread: a caller's options object carries more than the shape (its own `processes` count).
    connections: shape.connections,
    warmupS: shape.warmupS,
    durationS: shape.durationS,
    rate: shape.rate,
    mode: shape.mode,
    onWindow: () => {
      cpu0 = treeCpuMicros(t.roots);
      self0 = process.cpuUsage();
      for (const s of t.subscribers) s.measure();
      served0 = t.served?.() ?? served0;
    },
  });
  const cpu = cpuDelta(cpu0, treeCpuMicros(t.roots));
  const self = process.cpuUsage(self0);
  const wall = load.seconds;
  const answered = Object.values(load.statuses).reduce((a, b) => a + b, 0) - (load.statuses.errors ?? 0);
  const served = t.served ? await t.served() : [answered];
  const servedBefore = t.served ? await served0 : [0];
  const acked = load.committedInRun;
  await drain(t.subscribers, load.committed, DRAIN_MS);
  // Every acked transition must be in the log; rows beyond them were in flight when autocannon stopped.
  const stored = await t.inLog(acked);

  const missing = t.subscribers.map((s) => missingFrom(s, load.committed));
  const everywhere = load.committed.filter((id) => t.subscribers.every((s) => s.ids.has(id))).length;
  const conflicts = load.statuses['409'] ?? 0;
  const failures = Object.entries(load.statuses)
    .filter(([k]) => k !== '200' && k !== '409')
    .reduce((a, [, v]) => a + v, 0);
  const total = Object.values(cpu).reduce((a, b) => a + b, 0);
  const pct = (us: number) => Math.round((us / (wall * 1e6)) * 100);
  const level: WritePathLevel = {
    server: t.server,
    nodes: t.nodes.length,
    seconds: Math.round(load.seconds * 10) / 10,
    committed: load.committed.length,
    committedPerS: Math.round(load.committed.length / load.seconds),
    fannedOutPerS: Math.round(everywhere / load.seconds),
    latencyMs: load.latencyMs,
    statuses: load.statuses,
    conflicts,
    failures,
    perNode: t.nodes.map((node, i) => ({ node, requests: served[i]! - servedBefore[i]! })),
    subscribers: t.subscribers.map((s, i) => ({ node: s.node, missing: missing[i]!, lagMs: s.lag() })),
    persisted: { acked: acked.length, ackedInLog: stored.acked, rows: stored.rows },
    cpu: {
      usPerTransition: load.committed.length ? Math.round((total / load.committed.length) * 10) / 10 : 0,
      corePct: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, pct(v)])),
      loadGeneratorPct: pct(self.user + self.system),
    },
  };
  log(
    `${t.server} ${t.nodes.length} node(s): ${level.committedPerS}/s committed, ${level.fannedOutPerS}/s fanned out everywhere, p50 ${level.latencyMs.p50} ms p99 ${level.latencyMs.p99} ms, ` +
      `per node ${level.perNode.map((p) => p.requests).join('/')}, missing ${missing.join('/')}, ${level.cpu.usPerTransition} µs CPU/transition; ` +
      `persisted: ${level.persisted.ackedInLog} of ${level.persisted.acked} acked transitions in the log (${level.persisted.rows} rows)`,
  );
  return level;
}
