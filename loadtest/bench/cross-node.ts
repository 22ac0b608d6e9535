import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { type RedisCluster, type RedisInstance, startRedis, startRedisCluster } from '../../scripts/topology/redis.js';
import { closeAll, spawnWorkers, type Worker } from '../clients.js';
import {
  type BenchContext,
  benchContext,
  cpuProfileNodeOptions,
  ENGINES,
  type EngineId,
  LiveServers,
  onInterrupt,
  type RunningEngine,
  sidePortEngine,
} from './engines.js';
import { type FanoutOptions, fanoutOptions, fanoutUsage } from './flags.js';
import { cpuPercent, cpuPerDelivery, latencyAndLoss, maxThenRate, type Phase, subscribeAll } from './measure.js';
import { cpuMicros, postmasterPid, redisPid, treeCpuMicros } from './proc-cpu.js';
import { alternate, check, envelope, mediansBy, type Suite, type SuiteResult, type TargetCheck } from './suite.js';

/**
 * Fan-out across nodes: the publisher on node A, every subscriber on node B, so each event crosses
 * Redis once and is delivered by B. Server CPU is node A + node B + Redis (every redis-server of a
 * cluster); Postgres, which only the full path uses, is reported beside it.
 */
export type CrossId =
  | 'fluxo'
  | 'fluxo-fanout-only'
  | 'socketio-uws'
  | 'fluxo-sharded'
  | 'fluxo-fanout-only-sharded'
  | 'socketio-uws-sharded';

export interface CrossEngine {
  id: CrossId;
  label: string;
  /** What each of the two nodes runs. */
  server: Extract<EngineId, 'fluxo' | 'fluxo-fanout-only' | 'socketio-uws'>;
  /** One redis-server (classic adapter) or a 3-master Redis Cluster (sharded adapter). */
  redis: 'single' | 'cluster';
}

const CROSS: [CrossId, CrossEngine['server'], CrossEngine['redis'], string][] = [
  ['fluxo', 'fluxo', 'single', 'Fluxo full path on 2 nodes + redis-server; each event committed to a shared Postgres 15'],
  [
    'fluxo-fanout-only',
    'fluxo-fanout-only',
    'single',
    'Fluxo fan-out only on 2 nodes + redis-server: events handed to Socket.IO on node A without the event-log write',
  ],
  ['socketio-uws', 'socketio-uws', 'single', 'bare Socket.IO 4.8 on uWS, 2 nodes, @socket.io/redis-adapter on redis-server'],
  [
    'fluxo-sharded',
    'fluxo',
    'cluster',
    'Fluxo full path on 2 nodes + 3-master Redis Cluster (sharded adapter); each event committed to a shared Postgres 15',
  ],
  [
    'fluxo-fanout-only-sharded',
    'fluxo-fanout-only',
    'cluster',
    'Fluxo fan-out only on 2 nodes + 3-master Redis Cluster (sharded adapter), without the event-log write',
  ],
  [
    'socketio-uws-sharded',
    'socketio-uws',
    'cluster',
    'bare Socket.IO 4.8 on uWS, 2 nodes, sharded redis-adapter on the 3-master Redis Cluster',
  ],
];
export const CROSS_ENGINES = Object.fromEntries(CROSS.map(([id, server, redis, label]) => [id, { id, server, redis, label }])) as Record<
  CrossId,
  CrossEngine
>;

/** The processes whose CPU is "server CPU": both nodes and every redis-server. Postgres is apart. */
export const SERVER_PARTS = ['node A', 'node B', 'redis'];

export interface CrossMeasurement {
  engine: CrossId;
  /** 0 for medians. */
  round: number;
  phase: Phase;
  deliveriesPerS: number;
  eventsPerS: number;
  /** Node A + node B + Redis utime+stime (from /proc) over the window, per delivery received. */
  cpuUsPerDelivery: number | null;
  nodeAUs: number | null;
  nodeBUs: number | null;
  redisUs: number | null;
  /** Node A + node B + Redis, in % of one core. */
  serverCpuPct: number;
  /** Every process of the Postgres data directory, per delivery; null for engines without it. */
  postgresUs: number | null;
  postgresCpuPct: number | null;
  p50Ms: number;
  p99Ms: number;
  publishErrors: number;
  lost: number;
}

export interface CrossResult extends SuiteResult {
  medians: CrossMeasurement[];
  runs: CrossMeasurement[];
}

/** Issue 4's figure for bare Socket.IO-on-uWS across two nodes with the Redis adapter. */
export const ISSUE_BASELINE = { deliveriesPerS: 651_000, cpuUsPerDelivery: 1.2 };
const TARGET_CPU_US = 1.5;
const TARGET_P99_MS = 35;

/** Issue 4's cross-node targets, on the flat-out medians of every Fluxo engine. */
export function checkTargets(medians: CrossMeasurement[], subscribers: number): TargetCheck[] {
  return medians
    .filter((m) => m.phase === 'max' && CROSS_ENGINES[m.engine].server !== 'socketio-uws')
    .flatMap((m) => {
      const subject = `${m.engine}, ${subscribers.toLocaleString('en')} subscribers`;
      return [
        ...(m.cpuUsPerDelivery === null
          ? []
          : [check(subject, 'server CPU (both nodes + Redis) per delivery', m.cpuUsPerDelivery, TARGET_CPU_US, { unit: 'µs' })]),
        check(subject, 'p99 flat out', m.p99Ms, TARGET_P99_MS, { unit: 'ms' }),
      ];
    });
}

const fix = (x: number | null, digits = 2) => (x === null ? '-' : x.toFixed(digits));

function rows(medians: CrossMeasurement[]): string[][] {
  return medians.map((m) => {
    // Compared with the bare baseline on the same kind of Redis.
    const baseId: CrossId = CROSS_ENGINES[m.engine].redis === 'cluster' ? 'socketio-uws-sharded' : 'socketio-uws';
    const base = medians.find((x) => x.engine === baseId && x.phase === m.phase);
    return [
      m.engine,
      m.phase,
      m.deliveriesPerS.toLocaleString('en'),
      m.eventsPerS.toLocaleString('en'),
      base?.deliveriesPerS ? `${(m.deliveriesPerS / base.deliveriesPerS).toFixed(2)}×` : '-',
      fix(m.cpuUsPerDelivery),
      fix(m.nodeAUs),
      fix(m.nodeBUs),
      fix(m.redisUs),
      `${m.serverCpuPct} %`,
      fix(m.postgresUs),
      m.postgresCpuPct === null ? '-' : `${m.postgresCpuPct} %`,
      String(m.p50Ms),
      String(m.p99Ms),
      m.lost.toLocaleString('en'),
      m.engine === 'socketio-uws' && m.phase === 'max'
        ? `${(ISSUE_BASELINE.deliveriesPerS / 1000).toFixed(0)}k/s, ${ISSUE_BASELINE.cpuUsPerDelivery} µs`
        : '',
    ];
  });
}

type Options = FanoutOptions<CrossId>;

const QUICK_ENGINES: CrossId[] = ['fluxo', 'fluxo-fanout-only', 'socketio-uws', 'fluxo-sharded'];

/** Bare Socket.IO on uWS with the Redis adapter: what the `socketio-uws` engines run on each node. */
const UWS_REDIS = sidePortEngine('socketio-uws', 'bare Socket.IO 4.8 on uWS + redis-adapter', 'socket.io', 'servers/socketio-uws-redis.ts');

/** What the engines run on; started once per suite, only what the chosen engines need. */
interface Infra {
  postgres?: { handle: PostgresHandle; postmaster: number };
  redis?: { handle: RedisInstance; pids: number[] };
  cluster?: { handle: RedisCluster; pids: number[] };
}

async function startInfra(engines: CrossEngine[], infra: Infra, log: (l: string) => void): Promise<void> {
  if (engines.some((e) => e.server !== 'socketio-uws')) {
    const handle = await startPostgres();
    infra.postgres = { handle, postmaster: 0 };
    infra.postgres.postmaster = await postmasterPid(handle.url);
    log(`postgres ${handle.url} (postmaster ${infra.postgres.postmaster})`);
  }
  if (engines.some((e) => e.redis === 'single')) {
    const handle = await startRedis();
    infra.redis = { handle, pids: [] };
    infra.redis.pids = [await redisPid(handle.port)];
    log(`redis ${handle.url}`);
  }
  if (engines.some((e) => e.redis === 'cluster')) {
    const handle = await startRedisCluster();
    infra.cluster = { handle, pids: [] };
    infra.cluster.pids = await Promise.all(handle.nodes.map((n) => redisPid(n.port)));
    log(`redis cluster ${handle.nodes.map((n) => n.port).join(', ')}`);
  }
}

async function stopInfra(infra: Infra): Promise<void> {
  await Promise.allSettled([infra.postgres?.handle.stop(), infra.redis?.handle.stop(), infra.cluster?.handle.stop()]);
}

const live = new LiveServers();

async function startNode(
  o: Options,
  engine: CrossEngine,
  ctx: BenchContext,
  infra: Infra,
  env: Record<string, string>,
): Promise<RunningEngine> {
  if (o.extra['cpu-prof']) {
    const dir = resolve(o.extra['cpu-prof'], env.NODE_ID!);
    mkdirSync(dir, { recursive: true });
    env.NODE_OPTIONS = cpuProfileNodeOptions(dir);
  }
  const redisEnv: Record<string, string> =
    engine.redis === 'cluster'
      ? { REDIS_CLUSTER_NODES: infra.cluster!.handle.nodes.map((n) => `${n.host}:${n.port}`).join(',') }
      : { REDIS_URL: infra.redis!.handle.url };
  const node =
    engine.server === 'socketio-uws'
      ? await UWS_REDIS.start(ctx, { ...env, ...redisEnv })
      : await ENGINES[engine.server].start(ctx, { ...redisEnv, DATABASE_URL: infra.postgres!.handle.url, ...env });
  return { ...node, stop: live.track(node.stop) };
}

async function measure(
  o: Options,
  engine: CrossEngine,
  ctx: BenchContext,
  infra: Infra,
  workers: Worker[],
  round: number,
): Promise<CrossMeasurement[]> {
  const nodes: RunningEngine[] = [];
  try {
    // A first, alone: it applies the migrations B would otherwise race it for.
    const id = `${engine.id}-${round}`;
    const a = await startNode(o, engine, ctx, infra, { NODE_ID: `${id}-a`, MIGRATE_ON_START: 'true' });
    nodes.push(a);
    const b = await startNode(o, engine, ctx, infra, { NODE_ID: `${id}-b`, MIGRATE_ON_START: 'false' });
    nodes.push(b);
    await subscribeAll(workers, { ...ENGINES[engine.server], id: engine.id }, b.url, ctx, o.subscribers);
    const redisPids = (engine.redis === 'cluster' ? infra.cluster : infra.redis)!.pids;
    const pg = engine.server === 'socketio-uws' ? undefined : infra.postgres!.postmaster;
    const windows = await maxThenRate(workers, o, a.publish, o.backlog, {
      'node A': () => cpuMicros(a.pid),
      'node B': () => cpuMicros(b.pid),
      redis: () => redisPids.reduce((n, pid) => n + cpuMicros(pid), 0),
      ...(pg ? { postgres: () => treeCpuMicros({ pg }).pg! } : {}),
    });
    return windows.map(([phase, w]) => {
      const per = (k: string) => (k in w.cpuUs ? cpuPerDelivery(w, [k]) : null);
      return {
        engine: engine.id,
        round,
        phase,
        deliveriesPerS: w.deliveriesPerS,
        eventsPerS: Math.round(w.deliveriesPerS / o.subscribers),
        cpuUsPerDelivery: cpuPerDelivery(w, SERVER_PARTS),
        nodeAUs: per('node A'),
        nodeBUs: per('node B'),
        redisUs: per('redis'),
        serverCpuPct: cpuPercent(w, SERVER_PARTS),
        postgresUs: per('postgres'),
        postgresCpuPct: pg ? cpuPercent(w, ['postgres']) : null,
        ...latencyAndLoss(w),
      };
    });
  } finally {
    await closeAll(workers);
    for (const n of nodes.reverse()) await n.stop();
  }
}

export const crossNode: Suite<CrossResult> = {
  name: 'cross-node',
  summary: 'fan-out across 2 nodes + Redis (and a 3-master Redis Cluster): publisher on A, 1,000 subscribers on B',
  usage: `cross-node [options]
${fanoutUsage(Object.keys(CROSS_ENGINES))}
  (--quick runs fluxo, fluxo-fanout-only, socketio-uws, fluxo-sharded unless --engines says otherwise)
  --cpu-prof DIR       CPU-profile every node: DIR/<engine>-<round>-<a|b>/<pid>.cpuprofile`,
  async run(args) {
    const o = fanoutOptions(args.argv, args.quick, { all: Object.keys(CROSS_ENGINES) as CrossId[], quick: QUICK_ENGINES }, ['cpu-prof']);
    const engines = o.engineIds.map((id) => CROSS_ENGINES[id]);
    const ctx = benchContext();
    const infra: Infra = {};
    const { workers, close } = spawnWorkers(o.processes);
    const cleanup = async () => {
      await live.stopAll();
      close();
      await stopInfra(infra);
    };
    const offInterrupt = onInterrupt(cleanup);
    const started = Date.now();
    let all: CrossMeasurement[];
    try {
      await startInfra(engines, infra, args.log);
      all = await alternate(
        o.rounds,
        engines,
        (engine, round) => measure(o, engine, ctx, infra, workers, round),
        (m) =>
          args.log(
            `round ${m.round} ${m.engine.padEnd(26)} ${m.phase.padEnd(4)} ${String(m.deliveriesPerS).padStart(8)}/s  ${m.cpuUsPerDelivery ?? '-'} µs/delivery (A ${m.nodeAUs} B ${m.nodeBUs} redis ${m.redisUs}; postgres ${m.postgresUs ?? '-'})  p50 ${m.p50Ms} ms  p99 ${m.p99Ms} ms  lost ${m.lost}`,
          ),
      );
    } finally {
      offInterrupt();
      await cleanup();
    }
    const medians = mediansBy(all, (m) => `${m.engine} ${m.phase}`, ['publishErrors']);
    const { engineIds, extra: _extra, ...rest } = o;
    const config = { ...rest, payloadBytes: 100, engines: engineIds };
    return { ...envelope('cross-node', config, started, checkTargets(medians, o.subscribers)), medians, runs: all };
  },
  section: (r) => ({
    title: 'Fan-out across nodes (Redis)',
    about: [
      'Two server processes per engine: the publisher posts to node A, every subscriber is connected to node B,',
      'so each event crosses Redis once. `max` = publisher flat out; `rate` = fixed offered events/s. Server CPU',
      'is utime+stime from /proc over the measured window of node A + node B + every redis-server (three on the',
      'Redis Cluster), divided by deliveries counted at the clients; the A / B / Redis columns split it. Postgres',
      '(every process of its data directory) is not in that sum and is shown apart: only the full path writes to it.',
      `Flat out, the publisher keeps at most ${Number(r.config.backlog)} events per subscriber published but not yet received, so p99`,
      'at max includes up to that queue. Medians over rounds; read the ratios, not the absolutes.',
    ],
    head: [
      'engine',
      'phase',
      'deliveries/s',
      'events/s',
      'vs sio-uws',
      'µs/deliv A+B+Redis',
      'A',
      'B',
      'Redis',
      'A+B+Redis CPU',
      'Postgres µs/deliv',
      'Postgres CPU',
      'p50 ms',
      'p99 ms',
      'lost',
      'issue baseline',
    ],
    rows: rows(r.medians),
    left: 2,
    legend: {
      title: 'engines (publisher on node A, every subscriber on node B)',
      entries: [...new Set(r.medians.map((m) => m.engine))].map((e) => [e, CROSS_ENGINES[e].label]),
    },
    targetsHeading: true,
  }),
};
