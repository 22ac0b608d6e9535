import { readdir, readFile, readlink } from 'node:fs/promises';
import type { Sql } from 'postgres';
import type { ClusterHandle, SpawnedNode } from '../../scripts/topology/cluster.js';
import type { RedisCluster, RedisInstance } from '../../scripts/topology/redis.js';
import { internalRoom } from '../../shared/rooms.js';

export interface FaultContext {
  cluster: ClusterHandle;
  /** The primary, for looking at what a node is doing in it. */
  sql: Sql;
  /** The node to hit in cycle `cycle` (1-based index into the cluster), the busiest with writers first. */
  target(cycle: number): { index: number; node: SpawnedNode };
  redis(): RedisInstance;
  /** The Redis Cluster, in a scenario with `redis: 'cluster'` or `'cluster-replicas'`. */
  redisCluster(): RedisCluster;
  /** The tenant the writers and readers use (every reader is in its `tenant` room). */
  tenant: string;
  log(line: string): void;
  /** A problem with the fault itself (a drain that never ends, a node that does not come back). */
  trouble(line: string): void;
  sleep(ms: number): Promise<void>;
}

/** A fault: `run` injects it, holds it and heals it, and returns once it is healed. */
export interface Scenario {
  name: string;
  what: string;
  /**
   * What the nodes share: one redis-server (the classic adapter), or a 3-master Redis Cluster (the
   * sharded adapter, SPUBLISH/SSUBSCRIBE: each room's channel on the master owning its slot), with a
   * replica per master (`cluster-replicas`, cluster-node-timeout 2 s) as production clusters have.
   * @default 'single'
   */
  redis?: 'single' | 'cluster' | 'cluster-replicas';
  /** No fault is injected: any failed write attempt is a violation. */
  faultless?: boolean;
  run(ctx: FaultContext, cycle: number): Promise<void>;
}

/** How long most faults last. Long enough for every writer and reader to run into it. */
const HOLD_MS = 6000;
/** A draining node must be gone within its SHUTDOWN_GRACE_MS (the cluster's 2 s) plus this. */
const DRAIN_SLACK_MS = 5000;

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'none',
    what: 'no fault: steady writes and readers',
    faultless: true,
    run: (ctx) => ctx.sleep(HOLD_MS),
  },
  {
    name: 'node-kill',
    what: 'kill -9 of a node; started again on its port after 5 s',
    async run(ctx, cycle) {
      const { index, node } = ctx.target(cycle);
      ctx.log(`kill -9 ${node.nodeId}`);
      await node.kill9();
      await ctx.sleep(5000);
      await restart(ctx, index);
    },
  },
  {
    name: 'redis-restarts',
    what: 'redis-server killed (-9) and started again, empty, on its port: three times',
    async run(ctx) {
      for (let i = 1; i <= 3; i++) {
        ctx.log(`redis kill -9 (${i}/3)`);
        await ctx.redis().stop();
        await ctx.sleep(1500);
        await ctx.redis().restart();
        if (i < 3) await ctx.sleep(2500);
      }
    },
  },
  {
    name: 'redis-freeze',
    what: `redis-server frozen (SIGSTOP) for ${HOLD_MS / 1000} s, then SIGCONT`,
    async run(ctx) {
      ctx.log('redis SIGSTOP');
      ctx.redis().signal('SIGSTOP');
      try {
        await ctx.sleep(HOLD_MS);
      } finally {
        ctx.redis().signal('SIGCONT');
      }
    },
  },
  {
    name: 'pg-primary-crash',
    what: 'Postgres primary crashed (pg_ctl stop -m immediate), started again after 5 s',
    async run(ctx) {
      ctx.log('postgres primary stop -m immediate');
      await ctx.cluster.postgres.stopPrimary('immediate');
      await ctx.sleep(5000);
      await ctx.cluster.postgres.startPrimary();
    },
  },
  {
    name: 'pg-replica-stop',
    what: `streaming replica crashed (stop -m immediate) for ${HOLD_MS / 1000} s, then started again`,
    async run(ctx) {
      ctx.log('postgres replica stop -m immediate');
      await ctx.cluster.postgres.stopReplica('immediate');
      await ctx.sleep(HOLD_MS);
      await ctx.cluster.postgres.startReplica();
    },
  },
  {
    name: 'node-freeze',
    what: `a node frozen (SIGSTOP) inside a write transaction (locks held) for ${HOLD_MS / 1000} s, then SIGCONT`,
    run: (ctx, cycle) => freezeThen(ctx, cycle, 'transaction', 'resume'),
  },
  {
    name: 'node-freeze-kill',
    what: `a node frozen (SIGSTOP) inside a write transaction (locks held) for ${HOLD_MS / 1000} s, then kill -9 and started again`,
    run: (ctx, cycle) => freezeThen(ctx, cycle, 'transaction', 'kill'),
  },
  {
    name: 'node-commit-freeze',
    what: `a node frozen (SIGSTOP) while its COMMIT runs (committed, not yet published) for ${HOLD_MS / 1000} s, then SIGCONT`,
    run: (ctx, cycle) => freezeThen(ctx, cycle, 'commit', 'resume'),
  },
  {
    name: 'node-commit-kill',
    what: `a node frozen (SIGSTOP) while its COMMIT runs (committed, never published) for ${HOLD_MS / 1000} s, then kill -9 and started again`,
    run: (ctx, cycle) => freezeThen(ctx, cycle, 'commit', 'kill'),
  },
  {
    name: 'node-quiet-commit-kill',
    what: `a node frozen (SIGSTOP) while the COMMIT of a fire-and-forget publish runs (committed, never published, never asked again) for ${HOLD_MS / 1000} s, then kill -9 and started again`,
    async run(ctx, cycle) {
      await slowQuietCommits(ctx);
      await freezeThen(ctx, cycle, 'quiet-commit', 'kill');
    },
  },
  {
    name: 'node-drain',
    what: 'SIGTERM of a node (graceful drain); started again on its port after 2 s',
    async run(ctx, cycle) {
      const { index, node } = ctx.target(cycle);
      ctx.log(`SIGTERM ${node.nodeId}`);
      const started = Date.now();
      const timer = setTimeout(() => {
        ctx.trouble(`${node.nodeId} still running ${DRAIN_SLACK_MS} ms after its drain grace; killed`);
        void node.kill9();
      }, 2000 + DRAIN_SLACK_MS);
      try {
        await node.stop();
      } finally {
        clearTimeout(timer);
      }
      if (node.proc.exitCode !== 0) ctx.trouble(`${node.nodeId} exited ${node.proc.exitCode ?? node.proc.signalCode} after a drain`);
      ctx.log(`${node.nodeId} drained in ${Date.now() - started} ms`);
      await ctx.sleep(2000);
      await restart(ctx, index);
    },
  },
  {
    name: 'cluster-none',
    what: 'no fault, on a 3-master Redis Cluster (sharded adapter): steady writes and readers',
    redis: 'cluster',
    faultless: true,
    run: (ctx) => ctx.sleep(HOLD_MS),
  },
  {
    name: 'cluster-master-kill',
    what: 'kill -9 of the Redis Cluster master owning the tenant relay channel, started again (same slots, empty) after 3 s',
    redis: 'cluster',
    async run(ctx) {
      const master = await busiestMaster(ctx);
      ctx.log(`redis cluster master :${master.port} kill -9`);
      await master.stop();
      await ctx.sleep(3000);
      await master.restart();
      ctx.log(`redis cluster master :${master.port} started again; cluster ok`);
    },
  },
  {
    name: 'cluster-master-failover',
    what: 'kill -9 of the Redis Cluster master owning the tenant relay channel, for good: its replica takes over (automatic failover); the old master rejoins as a replica 6 s later',
    redis: 'cluster-replicas',
    async run(ctx) {
      const channel = relayChannel(ctx.cluster, ctx.tenant);
      const master = await ctx.redisCluster().masterOf(channel);
      ctx.log(`redis cluster master :${master.port} kill -9, not restarted`);
      await master.stop();
      const promoted = await ctx.redisCluster().waitForFailover(channel, master);
      ctx.log(`replica :${promoted.port} promoted; cluster ok`);
      await ctx.sleep(HOLD_MS);
      await master.restart();
      ctx.log(`old master :${master.port} started again (a replica now); cluster ok`);
    },
  },
  {
    name: 'cluster-master-freeze',
    what: `the Redis Cluster master owning the tenant relay channel frozen (SIGSTOP) for ${HOLD_MS / 1000} s, then SIGCONT`,
    redis: 'cluster',
    async run(ctx) {
      const master = await busiestMaster(ctx);
      ctx.log(`redis cluster master :${master.port} SIGSTOP`);
      master.signal('SIGSTOP');
      try {
        await ctx.sleep(HOLD_MS);
      } finally {
        master.signal('SIGCONT');
      }
    },
  },
];

/**
 * The master holding the tenant's relay channel: every event of the tenant crosses between nodes
 * on it (server/realtime/redis-adapter.ts), and each node with a reader subscribes to it.
 */
function busiestMaster(ctx: FaultContext) {
  return ctx.redisCluster().masterOf(relayChannel(ctx.cluster, ctx.tenant));
}

/** The sharded adapter's dynamic channel of a room, `${channelPrefix}#${namespace}#${room}#` (server/realtime/redis-adapter.ts). */
function dynamicChannel(cluster: ClusterHandle, room: string): string {
  return `${cluster.env.REDIS_KEY_PREFIX ?? 'fluxo'}:sio#/#${room}#`;
}

/** The tenant's relay channel: on a Redis Cluster, every event of the tenant crosses between nodes on it. */
export function relayChannel(cluster: ClusterHandle, tenant: string): string {
  return dynamicChannel(cluster, `fluxo-relay:${tenant}`);
}

/** A room's own channel: presence diffs and other broadcasts to the room cross on it. */
export function adapterChannel(cluster: ClusterHandle, tenant: string, room: string): string {
  return dynamicChannel(cluster, internalRoom(tenant, room));
}

export function scenarioNamed(name: string): Scenario {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new Error(`no scenario "${name}"; known: ${SCENARIOS.map((x) => x.name).join(', ')}`);
  return s;
}

async function restart(ctx: FaultContext, index: number): Promise<void> {
  try {
    const node = await ctx.cluster.restartNode(index);
    ctx.log(`${node.nodeId} started again`);
  } catch (err) {
    ctx.trouble(`node-${index} did not start again: ${(err as Error).message}`);
  }
}

/** Where a node is caught: inside a transaction that has written, or while its COMMIT runs. */
type Moment = 'transaction' | 'commit' | 'quiet-commit';

/**
 * What each moment looks like in pg_stat_activity, for the sessions of the node's sockets; `$2` is
 * when the node was stopped.
 */
const CAUGHT: Record<Moment, string> = {
  // Holds an xid, so row locks: an idempotency key, a process row, maybe the tenant's id counter.
  transaction: 'backend_xid IS NOT NULL',
  // Its COMMIT was sent before the stop and is running, or finished after it: the commit stands,
  // and the stopped node has not heard of it — nor published its events.
  commit: "query ~* '^\\s*commit' AND (state = 'active' OR state_change >= $2)",
  // A COMMIT held by slowQuietCommits: its transaction carries a quiet writer's publish.
  'quiet-commit': "query ~* '^\\s*commit' AND state = 'active' AND wait_event = 'PgSleep'",
};

/**
 * Makes the COMMIT of every transaction that writes a quiet writer's event (tag `q…`) last 300 ms,
 * with a deferred trigger, so that `freezeAt` can catch a node during one: that publish's writer
 * fires and forgets (and stops), so its event is its room's last, committed and never sent by the
 * frozen node — only the other nodes' room tail check can bring it to the readers before the barrier.
 */
async function slowQuietCommits(ctx: FaultContext): Promise<void> {
  await ctx.sql.unsafe(`
    CREATE OR REPLACE FUNCTION chaos_slow_quiet_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.data->>'chaos' LIKE 'q%' THEN PERFORM pg_sleep(0.3); END IF;
      RETURN NULL;
    END $$;
    DROP TRIGGER IF EXISTS chaos_slow_quiet_commit ON events;
    CREATE CONSTRAINT TRIGGER chaos_slow_quiet_commit AFTER INSERT ON events
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION chaos_slow_quiet_commit();`);
}

async function freezeThen(ctx: FaultContext, cycle: number, moment: Moment, then: 'resume' | 'kill'): Promise<void> {
  const { index, node } = ctx.target(cycle);
  await freezeAt(ctx, node, moment);
  try {
    await ctx.sleep(HOLD_MS);
  } finally {
    if (then === 'resume') node.proc.kill('SIGCONT');
  }
  if (then === 'kill') {
    ctx.log(`kill -9 ${node.nodeId} (frozen)`);
    await node.kill9();
    await restart(ctx, index);
  }
}

/** A COMMIT lasts a millisecond or two: catching one took up to ~400 tries (Node 22 commits faster). */
const MAX_TRIES = 2500;
/** …but never longer than this. */
const MAX_CATCH_MS = 40_000;

/**
 * SIGSTOPs `node` at `moment`: SIGSTOP, look at its Postgres sessions, and SIGCONT to try again a
 * moment later if none is there. Writes flow at tens per second, so this takes a few to a few
 * dozen tries; after MAX_TRIES it freezes the node as it is and reports trouble (the scenario did
 * not test what it says).
 */
async function freezeAt(ctx: FaultContext, node: SpawnedNode, moment: Moment): Promise<void> {
  const pid = node.proc.pid;
  if (pid === undefined) throw new Error(`${node.nodeId} has no pid`);
  const deadline = Date.now() + MAX_CATCH_MS;
  let tries = 0;
  while (tries < MAX_TRIES && Date.now() < deadline) {
    tries++;
    node.proc.kill('SIGSTOP');
    // A millisecond late, so that a commit that ended as the stop landed does not count.
    const stoppedAt = new Date(Date.now() + 1);
    const ports = [...(await localTcpPorts(pid))];
    const [row] = await ctx.sql.unsafe<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE client_port = ANY($1::int[]) AND ${CAUGHT[moment]}`,
      moment === 'commit' ? [ports, stoppedAt] : [ports],
    );
    if ((row?.n ?? 0) > 0) {
      ctx.log(`${node.nodeId} frozen (SIGSTOP) at ${moment} (${row?.n} session(s)), after ${tries} tries`);
      return;
    }
    node.proc.kill('SIGCONT');
    await ctx.sleep(1 + (tries % 7) * 1.5);
  }
  node.proc.kill('SIGSTOP');
  ctx.trouble(`${node.nodeId} frozen (SIGSTOP), but not caught at ${moment} in ${tries} tries`);
}

/** Local ports of the IPv4 TCP sockets a process holds (its fds matched against /proc/net/tcp). */
async function localTcpPorts(pid: number): Promise<Set<number>> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) inodes.add(m[1]!);
  }
  const ports = new Set<number>();
  for (const line of (await readFile(`/proc/${pid}/net/tcp`, 'utf8')).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && inodes.has(f[9]!)) ports.add(Number.parseInt(f[1]!.split(':')[1]!, 16));
  }
  return ports;
}
