import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { type PostgresHandle, startPostgres } from '../../test/harness/postgres.js';
import { type RedisCluster, type RedisInstance, startRedis, startRedisCluster } from '../../test/harness/redis.js';
import { newRunId, sleep } from '../setup.js';
import {
  CROSS_ENGINES,
  type CrossEngine,
  type CrossId,
  type CrossMeasurement,
  type CrossResult,
  checkTargets,
  markdown,
  type Phase,
  SERVER_PARTS,
  table,
} from './cross-node-report.js';
import { cpuProfileNodeOptions, startWithEnv } from './engine-env.js';
import { type BenchContext, cpuMicros, ENGINES, freePort, launch, stopper } from './engines.js';
import {
  cpuPercent,
  cpuPerDelivery,
  type FanoutOptions,
  fanoutOptions,
  fanoutUsage,
  LiveServers,
  onInterrupt,
  Session,
  spawnWorkers,
  subscribeAll,
  unsubscribeAll,
} from './measure.js';
import { treeCpuMicros } from './proc-cpu.js';
import { envelope, medianRow, type Suite } from './suite.js';

/**
 * Fan-out across nodes: the publisher on node A, every subscriber on node B, so each event crosses
 * Redis once and is delivered by B. Server CPU is node A + node B + Redis (every redis-server of a
 * cluster); Postgres, which only the full path uses, is reported beside it.
 */
const USAGE = `cross-node [options]
${fanoutUsage(Object.keys(CROSS_ENGINES))}
  (--quick runs fluxo, fluxo-fanout-only, socketio-uws, fluxo-sharded unless --engines says otherwise)
  --cpu-prof DIR       CPU-profile every node: DIR/<engine>-<round>-<a|b>/<pid>.cpuprofile`;

type Options = FanoutOptions<CrossId>;

const QUICK_ENGINES: CrossId[] = ['fluxo', 'fluxo-fanout-only', 'socketio-uws', 'fluxo-sharded'];

/** What the engines run on; started once per suite, only what the chosen engines need. */
interface Infra {
  postgres?: { handle: PostgresHandle; postmaster: number };
  redis?: { handle: RedisInstance; pids: number[] };
  cluster?: { handle: RedisCluster; pids: number[] };
}

async function redisPid(port: number): Promise<number> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    const m = /process_id:(\d+)/.exec(await r.info('server'));
    if (!m) throw new Error(`redis on ${port}: no process_id in INFO`);
    return Number(m[1]);
  } finally {
    r.disconnect();
  }
}

/** The postmaster's pid, from the data directory the server itself reports. */
async function postmasterPid(url: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ data_directory: string }[]>`show data_directory`;
    return Number(readFileSync(`${row!.data_directory}/postmaster.pid`, 'utf8').split('\n')[0]);
  } finally {
    await sql.end();
  }
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

interface Node {
  pid: number;
  url: string;
  /** Publishes `count` events through this node. */
  publish(count: number): Promise<void>;
  stop(): Promise<void>;
}

const live = new LiveServers();

async function startNode(engine: CrossEngine, ctx: BenchContext, infra: Infra, env: Record<string, string>): Promise<Node> {
  if (o.extra['cpu-prof']) {
    const dir = resolve(o.extra['cpu-prof'], env.NODE_ID!);
    mkdirSync(dir, { recursive: true });
    env.NODE_OPTIONS = [process.env.NODE_OPTIONS, cpuProfileNodeOptions(dir)].filter(Boolean).join(' ');
  }
  const redisEnv: Record<string, string> =
    engine.redis === 'cluster'
      ? { REDIS_CLUSTER_NODES: infra.cluster!.handle.nodes.map((n) => `${n.host}:${n.port}`).join(',') }
      : { REDIS_URL: infra.redis!.handle.url };
  if (engine.server === 'socketio-uws') {
    const [port, side] = [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${port}`;
    const script = fileURLToPath(new URL('servers/socketio-uws-redis.ts', import.meta.url));
    const child = await launch(script, { ...env, ...redisEnv, PORT: String(port), SIDE_PORT: String(side) }, `${url}/health`);
    const publish = async (count: number) => {
      const res = await fetch(`http://127.0.0.1:${side}/`, {
        method: 'POST',
        body: JSON.stringify({ room: 'bench', data: ctx.payload, count }),
      });
      await res.arrayBuffer();
      if (res.status !== 201) throw new Error(`publish: HTTP ${res.status}`);
    };
    return { pid: child.pid!, url, publish, stop: live.track(stopper(child)) };
  }
  const node = await startWithEnv(ENGINES[engine.server], ctx, { ...redisEnv, DATABASE_URL: infra.postgres!.handle.url, ...env });
  return { ...node, stop: live.track(node.stop) };
}

let o: Options;

async function measure(
  engine: CrossEngine,
  ctx: BenchContext,
  infra: Infra,
  workers: ReturnType<typeof spawnWorkers>['workers'],
  round: number,
): Promise<CrossMeasurement[]> {
  const nodes: Node[] = [];
  try {
    // A first, alone: it applies the migrations B would otherwise race it for.
    const id = `${engine.id}-${round}`;
    const a = await startNode(engine, ctx, infra, { NODE_ID: `${id}-a`, MIGRATE_ON_START: 'true' });
    nodes.push(a);
    const b = await startNode(engine, ctx, infra, { NODE_ID: `${id}-b`, MIGRATE_ON_START: 'false' });
    nodes.push(b);
    const base = ENGINES[engine.server];
    await subscribeAll(workers, {
      url: b.url,
      protocol: base.protocol,
      room: base.room,
      subscribers: o.subscribers,
      connectRate: 1000,
      label: engine.id,
      ...(base.auth ? { auth: { secret: ctx.secret, tenant: ctx.tenant } } : {}),
    });
    // Join-time traffic (Fluxo's presence diffs, which cross Redis too) settles first.
    await sleep(o.quick ? 300 : 1000);
    const redisPids = (engine.redis === 'cluster' ? infra.cluster : infra.redis)!.pids;
    const pg = engine.server === 'socketio-uws' ? undefined : infra.postgres!.postmaster;
    const session = new Session(workers, o.subscribers);
    const out: CrossMeasurement[] = [];
    for (const phase of ['max', 'rate'] as Phase[]) {
      const w = await session.phase({
        publish: (n) => a.publish(n),
        count: phase === 'max' ? o.batch : 1,
        offered: phase === 'max' ? 0 : o.rate,
        inflight: o.inflight,
        backlogEvents: o.backlog,
        warmupMs: o.quick ? 300 : 700,
        windowMs: o.windowS * 1000,
        drainMs: o.quick ? 200 : 1000,
        cpu: {
          'node A': () => cpuMicros(a.pid),
          'node B': () => cpuMicros(b.pid),
          redis: () => redisPids.reduce((n, pid) => n + cpuMicros(pid), 0),
          ...(pg ? { postgres: () => treeCpuMicros({ pg }).pg! } : {}),
        },
      });
      const per = (k: string) => (k in w.cpuUs ? cpuPerDelivery(w, [k]) : null);
      out.push({
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
        p50Ms: w.latency.p50,
        p99Ms: w.latency.p99,
        publishErrors: w.publishErrors,
        lost: w.lost,
      });
    }
    return out;
  } finally {
    await unsubscribeAll(workers);
    for (const n of nodes.reverse()) await n.stop();
  }
}

export const crossNode: Suite<CrossResult> = {
  name: 'cross-node',
  summary: 'fan-out across 2 nodes + Redis (and a 3-master Redis Cluster): publisher on A, 1,000 subscribers on B',
  usage: USAGE,
  table,
  markdown,
  async run(args) {
    o = fanoutOptions(args.argv, args.quick, { all: Object.keys(CROSS_ENGINES) as CrossId[], quick: QUICK_ENGINES }, ['cpu-prof']);
    const engines = o.engineIds.map((id) => CROSS_ENGINES[id]);
    const ctx: BenchContext = {
      secret: 'bench-secret-that-is-long-enough-for-hs256!!',
      publishKey: 'bench-publish-key-0123456789',
      tenant: `bench-${newRunId()}`,
      // ~100 bytes of event data.
      payload: { pad: 'x'.repeat(90) },
    };
    const infra: Infra = {};
    const { workers, close } = spawnWorkers(o.processes);
    const cleanup = async () => {
      await live.stopAll();
      close();
      await stopInfra(infra);
    };
    const offInterrupt = onInterrupt(cleanup);
    const all: CrossMeasurement[] = [];
    const started = Date.now();
    try {
      await startInfra(engines, infra, args.log);
      for (let round = 1; round <= o.rounds; round++) {
        for (const engine of engines) {
          for (const m of await measure(engine, ctx, infra, workers, round)) {
            all.push(m);
            args.log(
              `round ${round} ${engine.id.padEnd(26)} ${m.phase.padEnd(4)} ${String(m.deliveriesPerS).padStart(8)}/s  ${m.cpuUsPerDelivery ?? '-'} µs/delivery (A ${m.nodeAUs} B ${m.nodeBUs} redis ${m.redisUs}; postgres ${m.postgresUs ?? '-'})  p50 ${m.p50Ms} ms  p99 ${m.p99Ms} ms  lost ${m.lost}`,
            );
          }
        }
      }
    } finally {
      offInterrupt();
      await cleanup();
    }
    const medians = o.engineIds.flatMap((engine) =>
      (['max', 'rate'] as Phase[]).map((phase) =>
        medianRow(
          all.filter((m) => m.engine === engine && m.phase === phase),
          ['publishErrors'],
        ),
      ),
    );
    const { engineIds, extra: _extra, ...rest } = o;
    const config = { ...rest, payloadBytes: 100, engines: engineIds };
    return { ...envelope('cross-node', config, started, checkTargets(medians, o.subscribers)), medians, runs: all };
  },
};
