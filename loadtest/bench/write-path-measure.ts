import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres, { type Sql } from 'postgres';
import { CLUSTER_SECRET, type NginxHandle, startNginx } from '../../scripts/topology/cluster.js';
import { token } from '../../scripts/topology/tokens.js';
import { ask, openWave, spawnWorkers } from '../clients.js';
import { formatCounts } from '../report.js';
import { balancedAddresses, sleep } from '../setup.js';
import type { LatencySummary } from '../stats.js';
import { decodeHistogram, summarize } from '../stats.js';
import { cpuDelta, cpuMicros, percentOfCore, postmasterPid, redisPid, treeCpuMicros } from './proc-cpu.js';
import { ackedInLog } from './servers/tutorial-schema.js';
import { type LoadResult, type LoadSpec, type ProcessState, runTransitions } from './write-path-load.js';
import { runSocketTransitions } from './write-path-socket.js';

/**
 * One measured level of the write-path suite, whatever serves it: Fluxo's nodes or the tutorial
 * stack. Both sit behind an nginx of their own, get the same load, have their acked transitions
 * checked the same way (in the log, at a subscriber on every node) and their CPU read from the
 * same kinds of process trees.
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

/** A running system to measure: its app nodes, what they run on, and how to seed its tenant. */
export interface Target {
  server: string;
  /** The app's nodes, in the order of `served()`. */
  nodes: { id: string; url: string; pid: number }[];
  /** Where the level's nginx, in front of `nodes`, keeps its config and pid file. */
  nginxDir: string;
  redisPort: number;
  /** The Postgres server, whose every process counts. */
  postgresUrl: string;
  /** The app's database: its event log. */
  dbUrl: string;
  tenant: string;
  /** The tenant's processes, made through the app at `url` (Fluxo) or written straight to its database (a baseline). */
  seed(url: string, users: string[], db: Sql): Promise<ProcessState[]>;
  /** Transition requests each node has answered so far; without it the load's own count stands for its one node. */
  served?: () => Promise<number[]>;
}

export interface LevelOptions extends Pick<LoadSpec, 'connections' | 'warmupS' | 'durationS' | 'rate' | 'mode'> {
  /** How the load writes: HTTP requests (autocannon) or `process:transition` over Socket.IO. @default 'http' */
  transport?: 'http' | 'socket.io';
  /** Users the connections' tokens belong to. */
  users: number;
  /** Source addresses (distinct /24s) per node. */
  sources: number;
}

/** Puts an nginx in front of the target's nodes, seeds its tenant, subscribes on every node, and measures one level. */
export async function measureLevel(t: Target, o: LevelOptions, log: (l: string) => void): Promise<WritePathLevel> {
  let nginx: NginxHandle | null = null;
  const db = postgres(t.dbUrl, { max: 1, onnotice: () => {} });
  try {
    nginx = await startNginx(
      t.nginxDir,
      t.nodes.map((x) => new URL(x.url).host),
    );
    return await measureBehind(nginx.url, db, t, o, log);
  } finally {
    await nginx?.stop();
    await db.end({ timeout: 1 });
  }
}

async function measureBehind(url: string, db: Sql, t: Target, o: LevelOptions, log: (l: string) => void): Promise<WritePathLevel> {
  // A token per connection: `users` editors of the tenant, cycled over the connections.
  const minted = await Promise.all(
    Array.from({ length: o.users }, (_, i) => token({ sub: `wp-${i}`, tid: t.tenant, role: 'editor', secret: CLUSTER_SECRET })),
  );
  const tokens = Array.from({ length: o.connections }, (_, i) => minted[i % minted.length]!);
  const processes = await t.seed(url, tokens.slice(0, o.users), db);
  const ids = t.nodes.map((x) => x.id);
  const byNode = await balancedAddresses(url, ids, o.sources);
  // Interleaved, so that connection i and i+1 go to different nodes and each node gets connections/n.
  const localAddresses = Array.from({ length: o.sources }, (_, k) => ids.map((id) => byNode.get(id)![k]!)).flat();
  const roots: Record<string, number> = {
    ...Object.fromEntries(t.nodes.map((x) => [x.id, x.pid])),
    nginx: Number(readFileSync(join(t.nginxDir, 'nginx.pid'), 'utf8').trim()),
    redis: await redisPid(t.redisPort),
    postgres: await postmasterPid(t.postgresUrl),
  };
  // A subscriber straight on each node (every node's sockets must get every event, whichever node
  // committed it), each in a client process of its own so that its lag is its node's.
  const viewers = await Promise.all(ids.map((id) => token({ sub: `wp-sub-${id}`, tid: t.tenant, role: 'viewer', secret: CLUSTER_SECRET })));
  const { workers, close } = spawnWorkers(t.nodes.length);
  try {
    const wave = await openWave(workers, (i) => ({
      url: t.nodes[i]!.url,
      protocol: 'socket.io',
      count: 1,
      rate: 1,
      tokens: [viewers[i]!],
      rooms: [{ name: 'tenant', key: 'tenant' }],
      localAddresses: [],
    }));
    if (wave.connected < workers.length) throw new Error(`subscribers: ${wave.connected}/${workers.length}, ${formatCounts(wave.errors)}`);
    const clientCpu = () => workers.reduce((n, w) => n + cpuMicros(w.child.pid!), 0);
    let cpu0: Record<string, number> = {};
    let self0 = process.cpuUsage();
    let clients0 = 0;
    let marked: Promise<unknown> = Promise.resolve();
    let served0: Promise<number[]> = Promise.resolve([]);
    const load = await (o.transport === 'socket.io' ? runSocketTransitions : runTransitions)({
      url,
      tokens,
      processes,
      localAddresses,
      // Picked, not spread: a caller's options object carries more than the shape (its own `processes` count).
      connections: o.connections,
      warmupS: o.warmupS,
      durationS: o.durationS,
      rate: o.rate,
      mode: o.mode,
      onWindow: () => {
        cpu0 = treeCpuMicros(roots);
        self0 = process.cpuUsage();
        clients0 = clientCpu();
        marked = ask(workers, { type: 'mark' });
        served0 = t.served?.() ?? served0;
      },
    });
    const cpu = cpuDelta(cpu0, treeCpuMicros(roots));
    const self = process.cpuUsage(self0);
    const clients = clientCpu() - clients0;
    const answered = Object.values(load.statuses).reduce((a, b) => a + b, 0) - (load.statuses.errors ?? 0);
    const served = t.served ? await t.served() : [answered];
    const servedBefore = t.served ? await served0 : [0];
    const acked = load.committedInRun;
    await marked;
    // Fan-out may trail the last ack: a missing event counts as lost only after DRAIN_MS.
    const verify = () => ask(workers, { type: 'verify', expected: { tenant: load.committed } });
    const deadline = Date.now() + DRAIN_MS;
    let verified = await verify();
    while (verified.some((v) => v.missingTotal > 0) && Date.now() < deadline) verified = await sleep(100).then(verify);
    const missing = verified.map((v) => new Set(v.missing.flatMap((m) => m.ids)));
    const lags = (await ask(workers, { type: 'mark' })).map((m) => summarize(decodeHistogram(m.hist)));
    // Every acked transition must be in the log; rows beyond them were in flight when autocannon stopped.
    const stored = await ackedInLog(db, t.tenant, acked);

    const everywhere = load.committed.filter((id) => missing.every((m) => !m.has(id))).length;
    const conflicts = load.statuses['409'] ?? 0;
    const failures = Object.entries(load.statuses)
      .filter(([k]) => k !== '200' && k !== '409')
      .reduce((a, [, v]) => a + v, 0);
    const total = Object.values(cpu).reduce((a, b) => a + b, 0);
    const pct = (us: number) => percentOfCore(us, load.seconds);
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
      perNode: ids.map((node, i) => ({ node, requests: served[i]! - servedBefore[i]! })),
      subscribers: ids.map((node, i) => ({ node, missing: missing[i]!.size, lagMs: lags[i]! })),
      persisted: { acked: acked.length, ackedInLog: stored.acked, rows: stored.rows },
      cpu: {
        usPerTransition: load.committed.length ? Math.round((total / load.committed.length) * 10) / 10 : 0,
        corePct: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, pct(v)])),
        // autocannon in this process, and the subscribers' client processes.
        loadGeneratorPct: pct(self.user + self.system + clients),
      },
    };
    log(
      `${t.server} ${ids.length} node(s): ${level.committedPerS}/s committed, ${level.fannedOutPerS}/s fanned out everywhere, p50 ${level.latencyMs.p50} ms p99 ${level.latencyMs.p99} ms, ` +
        `per node ${level.perNode.map((p) => p.requests).join('/')}, missing ${level.subscribers.map((x) => x.missing).join('/')}, ${level.cpu.usPerTransition} µs CPU/transition; ` +
        `persisted: ${level.persisted.ackedInLog} of ${level.persisted.acked} acked transitions in the log (${level.persisted.rows} rows)`,
    );
    return level;
  } finally {
    close();
  }
}
