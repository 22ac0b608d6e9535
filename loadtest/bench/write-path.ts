import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import postgres from 'postgres';
import type { Process } from '../../shared/protocol.js';
import {
  CLUSTER_SECRET,
  type ClusterHandle,
  type NginxHandle,
  requireBinaries,
  startCluster,
  startNginx,
} from '../../test/harness/cluster.js';
import { createBoard, createProcess } from '../../test/harness/fixtures.js';
import { token } from '../../test/harness/node.js';
import { newRunId, runTenant } from '../setup.js';
import type { LatencySummary } from '../stats.js';
import { cpuProfileNodeOptions, onInterrupt } from './engines.js';
import { suiteFlags } from './flags.js';
import { cpuDelta, postmasterPid, redisPid, treeCpuMicros } from './proc-cpu.js';
import { check, envelope, type Suite, type SuiteResult, type TargetCheck } from './suite.js';
import {
  balancedAddresses,
  drain,
  type LoadResult,
  missingFrom,
  runTransitions,
  type Subscriber,
  subscribe,
  transitionsServed,
  type WriteMode,
} from './write-path-load.js';

/**
 * The write path through the production topology: HTTP transitions through nginx (ip_hash) to 1, 2
 * and 3 Fluxo nodes, committed to Postgres and fanned out over Redis to a subscriber on every node.
 * The load comes from source addresses spread over /24s so that ip_hash shares it between nodes.
 */
const USAGE = `write-path [options]
  --nodes a,b        node counts, each measured in turn (default 1,2,3; quick 1)
  --duration S       measured seconds per node count (default 15; quick 3)
  --warmup S         unmeasured load first, per node count (default 3; quick 1)
  --connections N    HTTP connections of autocannon (default 96)
  --processes N      processes of the tenant's workflow, shared round robin by the connections (default: one each)
  --users N          users the connections' tokens belong to (default 24)
  --rate N           offered transitions/s over all connections; 0 = flat out (default 0)
  --mode blind|rmw   blind writes, or expectedVersion from the last state seen (default blind)
  --sources N        source addresses (distinct /24s) per node (default 4)
  --cpu-prof DIR     CPU-profile every node; a .cpuprofile per node is written to DIR when it stops`;

const TARGET_PER_S = 5_000;
const TARGET_P99_MS = 50;
/** Processes are created through the API this many at a time. */
const SETUP_INFLIGHT = 16;
/** How long fan-out may trail the last ack before a missing event counts as lost. */
const DRAIN_MS = 5_000;

interface Options {
  nodes: number[];
  durationS: number;
  warmupS: number;
  connections: number;
  processes: number;
  users: number;
  rate: number;
  mode: WriteMode;
  sources: number;
  cpuProfDir: string | undefined;
}

export interface WritePathLevel {
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
  /** Transition requests each node answered in the window, from its /metrics. */
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

export interface WritePathResult extends SuiteResult {
  levels: WritePathLevel[];
}

function options(argv: string[], quick: boolean): Options {
  const f = suiteFlags(argv, ['nodes', 'duration', 'warmup', 'connections', 'processes', 'users', 'rate', 'mode', 'sources', 'cpu-prof']);
  // Ascending: a bigger cluster is made by adding nodes to the running one.
  const nodes = f.ints('nodes', quick ? [1] : [1, 2, 3]);
  if (nodes.some((n) => n > 8)) throw new Error('--nodes: counts 1..8');
  const mode = f.str('mode') ?? 'blind';
  if (mode !== 'blind' && mode !== 'rmw') throw new Error('--mode: blind or rmw');
  const connections = f.int('connections', 96);
  return {
    nodes,
    durationS: f.int('duration', quick ? 3 : 15),
    warmupS: f.int('warmup', quick ? 1 : 3, 0),
    connections,
    processes: f.int('processes', connections),
    users: f.int('users', 24),
    rate: f.int('rate', 0, 0),
    mode,
    sources: f.int('sources', 4),
    cpuProfDir: f.str('cpu-prof'),
  };
}

/** pids of the server processes whose CPU is counted (each with its children). */
async function serverRoots(cluster: ClusterHandle, nginxDir: string, nodes: number): Promise<Record<string, number>> {
  const roots: Record<string, number> = {};
  for (const n of cluster.nodes.slice(0, nodes)) roots[n.nodeId] = n.proc.pid!;
  roots.nginx = Number(readFileSync(join(nginxDir, 'nginx.pid'), 'utf8').trim());
  roots.redis = await redisPid(cluster.redis!.port);
  roots.postgres = await postmasterPid(cluster.postgres.url);
  return roots;
}

async function setupTenant(url: string, tenant: string, o: Options): Promise<{ tokens: string[]; processes: Process[] }> {
  const mint = (sub: string, role: 'admin' | 'editor' | 'viewer') => token({ sub, tid: tenant, role, secret: CLUSTER_SECRET });
  const users = await Promise.all(Array.from({ length: o.users }, (_, i) => mint(`wp-${i}`, 'editor')));
  const tokens = Array.from({ length: o.connections }, (_, i) => users[i % users.length]!);
  const wf = await createBoard(url, await mint('wp-admin', 'admin'));
  const processes: Process[] = [];
  let made = 0;
  await Promise.all(
    Array.from({ length: SETUP_INFLIGHT }, async () => {
      for (let i = made++; i < o.processes; i = made++)
        processes.push(await createProcess(url, users[i % users.length]!, wf.id, `wp ${i}`));
    }),
  );
  return { tokens, processes };
}

async function runLevel(cluster: ClusterHandle, n: number, o: Options, run: string, log: (l: string) => void): Promise<WritePathLevel> {
  const nodes = cluster.nodes.slice(0, n);
  const nginxDir = join(cluster.dir, `nginx-${n}`);
  let nginx: NginxHandle | null = null;
  const subs: Subscriber[] = [];
  const db = postgres(cluster.postgres.url, { max: 1, onnotice: () => {} });
  try {
    nginx = await startNginx(
      nginxDir,
      nodes.map((x) => `127.0.0.1:${x.port}`),
    );
    const tenant = runTenant(run, n);
    const { tokens, processes } = await setupTenant(nginx.url, tenant, o);
    const byNode = await balancedAddresses(
      nginx.url,
      nodes.map((x) => x.nodeId),
      o.sources,
    );
    // Interleaved, so that connection i and i+1 go to different nodes and each node gets connections/n.
    const localAddresses = Array.from({ length: o.sources }, (_, k) => nodes.map((x) => byNode.get(x.nodeId)![k]!)).flat();
    // Straight to each node: the point is that every node's sockets get every event, whichever node committed it.
    for (const x of nodes) {
      const viewer = await token({ sub: `wp-sub-${x.nodeId}`, tid: tenant, role: 'viewer', secret: CLUSTER_SECRET });
      subs.push(await subscribe(x.nodeId, x.url, viewer));
    }
    const roots = await serverRoots(cluster, nginxDir, n);
    let cpu0: Record<string, number> = {};
    let self0 = process.cpuUsage();
    let served0: Promise<number[]> = Promise.resolve([]);
    const load = await runTransitions({
      url: nginx.url,
      tokens,
      processes,
      localAddresses,
      connections: o.connections,
      warmupS: o.warmupS,
      durationS: o.durationS,
      rate: o.rate,
      mode: o.mode,
      onWindow: () => {
        cpu0 = treeCpuMicros(roots);
        self0 = process.cpuUsage();
        for (const s of subs) s.measure();
        served0 = Promise.all(nodes.map((x) => transitionsServed(x.url)));
      },
    });
    const cpu = cpuDelta(cpu0, treeCpuMicros(roots));
    const self = process.cpuUsage(self0);
    const wall = load.seconds;
    const served = await Promise.all(nodes.map((x) => transitionsServed(x.url)));
    const servedBefore = await served0;
    const acked = load.committedInRun;
    await drain(subs, load.committed, DRAIN_MS);
    // Every acked transition must be in the log; rows beyond them were in flight when autocannon stopped.
    const [stored] = await db<{ rows: number; acked: number }[]>`SELECT count(*)::int AS rows,
      count(*) FILTER (WHERE id = ANY(${acked}::bigint[]))::int AS acked
      FROM events WHERE tenant_id = ${tenant} AND type = 'process.transitioned'`;

    const missing = subs.map((s) => missingFrom(s, load.committed));
    const everywhere = load.committed.filter((id) => subs.every((s) => s.ids.has(id))).length;
    const conflicts = load.statuses['409'] ?? 0;
    const failures = Object.entries(load.statuses)
      .filter(([k]) => k !== '200' && k !== '409')
      .reduce((a, [, v]) => a + v, 0);
    const total = Object.values(cpu).reduce((a, b) => a + b, 0);
    const pct = (us: number) => Math.round((us / (wall * 1e6)) * 100);
    const level: WritePathLevel = {
      nodes: n,
      seconds: Math.round(load.seconds * 10) / 10,
      committed: load.committed.length,
      committedPerS: Math.round(load.committed.length / load.seconds),
      fannedOutPerS: Math.round(everywhere / load.seconds),
      latencyMs: load.latencyMs,
      statuses: load.statuses,
      conflicts,
      failures,
      perNode: nodes.map((x, i) => ({ node: x.nodeId, requests: served[i]! - servedBefore[i]! })),
      subscribers: subs.map((s, i) => ({ node: s.node, missing: missing[i]!, lagMs: s.lag() })),
      persisted: { acked: acked.length, ackedInLog: Number(stored?.acked), rows: Number(stored?.rows) },
      cpu: {
        usPerTransition: load.committed.length ? Math.round((total / load.committed.length) * 10) / 10 : 0,
        corePct: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, pct(v)])),
        loadGeneratorPct: pct(self.user + self.system),
      },
    };
    log(
      `${n} node(s): ${level.committedPerS}/s committed, ${level.fannedOutPerS}/s fanned out everywhere, p50 ${level.latencyMs.p50} ms p99 ${level.latencyMs.p99} ms, ` +
        `per node ${level.perNode.map((p) => p.requests).join('/')}, missing ${missing.join('/')}, ${level.cpu.usPerTransition} µs CPU/transition; ` +
        `persisted: ${level.persisted.ackedInLog} of ${level.persisted.acked} acked transitions in the log (${level.persisted.rows} rows)`,
    );
    return level;
  } finally {
    for (const s of subs) s.close();
    await nginx?.stop();
    await db.end({ timeout: 1 });
  }
}

async function run(args: { quick: boolean; argv: string[]; log: (l: string) => void }): Promise<WritePathResult> {
  const started = Date.now();
  const o = options(args.argv, args.quick);
  requireBinaries();
  const env: Record<string, string> = {
    LOG_LEVEL: 'warn',
    // Capacity, not a human's click rate: the limiter still runs (and costs its Redis round trips).
    RATE_LIMITS: 'process:transition=1000000/1,http:write=1000000/1',
  };
  if (o.cpuProfDir) {
    mkdirSync(o.cpuProfDir, { recursive: true });
    env.NODE_OPTIONS = cpuProfileNodeOptions(resolve(o.cpuProfDir));
  }
  // The terminal's SIGINT also reaches the nodes, nginx and Redis, but not Postgres (pg_ctl detaches
  // it) nor the temp dirs. While the cluster is starting, startCluster cleans up after itself when a
  // part dies; an interrupt then stops it once it is up.
  // A profile is written when a node exits on its own: stop them with SIGTERM then.
  const starting = startCluster({ nodes: 1, env, graceful: o.cpuProfDir !== undefined, onProgress: (w) => args.log(w) });
  const stop = async () => (await starting.catch(() => null))?.stop();
  const offInterrupt = onInterrupt(stop);
  const levels: WritePathLevel[] = [];
  try {
    const cluster = await starting;
    const runId = newRunId();
    for (const n of o.nodes) {
      while (cluster.nodes.length < n) cluster.nodes.push(await cluster.addNode(cluster.nodes.length + 1));
      levels.push(await runLevel(cluster, n, o, runId, args.log));
    }
  } finally {
    offInterrupt();
    await stop();
  }
  const targets: TargetCheck[] = levels.flatMap((l) => {
    const subject = `fluxo ${l.nodes} node${l.nodes > 1 ? 's' : ''}`;
    // Missing events already lower fannedOutPerS: it counts only transitions that reached every node.
    return [
      check(subject, 'transitions/s persisted and fanned out', l.fannedOutPerS, TARGET_PER_S, { atLeast: true, unit: '/s' }),
      // With nothing committed there is no latency to meet the target with.
      l.committed > 0
        ? check(subject, 'p99 latency', l.latencyMs.p99, TARGET_P99_MS, { unit: 'ms' })
        : { ...check(subject, 'p99 latency', 0, TARGET_P99_MS, { unit: 'ms' }), actual: 'no transition committed', met: false },
    ];
  });
  const { cpuProfDir: _dir, ...config } = o;
  return { ...envelope('write-path', config, started, targets), levels };
}

const ms = (x: number) => x.toFixed(1);

function rows(r: WritePathResult): string[][] {
  return r.levels.map((l) => [
    String(l.nodes),
    l.committedPerS.toLocaleString('en'),
    l.fannedOutPerS.toLocaleString('en'),
    ms(l.latencyMs.p50),
    ms(l.latencyMs.p99),
    ms(l.latencyMs.max),
    l.perNode.map((p) => p.requests).join(' / '),
    l.subscribers.map((s) => s.missing).join(' / '),
    l.subscribers.map((s) => ms(s.lagMs.p99)).join(' / '),
    String(l.conflicts),
    l.failures
      ? Object.entries(l.statuses)
          .filter(([k]) => k !== '200' && k !== '409')
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')
      : '0',
    String(l.cpu.usPerTransition),
    `${Object.entries(l.cpu.corePct)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')} (${l.cpu.loadGeneratorPct})`,
  ]);
}

export const writePath: Suite<WritePathResult> = {
  name: 'write-path',
  summary: 'HTTP transitions through nginx to 1–3 nodes: persisted to Postgres and fanned out, per second and p99',
  usage: USAGE,
  run,
  section: (r) => ({
    title: 'Write path: transitions through nginx, persisted and fanned out',
    about: [
      'autocannon POSTs transitions through nginx (ip_hash) from source addresses spread evenly over the nodes',
      '(per node: requests each node served, from its /metrics). A subscriber on every node counts the events;',
      '"fanned out/s" counts the transitions acked *and* received on every node. Latency is the HTTP round trip',
      '(commit included); fan-out p99 is commit to receipt per subscriber. CPU: µs per transition over all server',
      'processes (nodes, nginx, Postgres, Redis, from /proc), and % of one core per part (the load generator in brackets).',
    ],
    head: [
      'nodes',
      'committed/s',
      'fanned out/s',
      'p50 ms',
      'p99 ms',
      'max ms',
      'per node',
      'missing',
      'fan-out p99 ms',
      '409 conflicts',
      'failures',
      'µs CPU/tr',
      'CPU % (load gen)',
    ],
    rows: rows(r),
  }),
};
