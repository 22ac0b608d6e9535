/**
 * The fault engine: one scenario on a fresh cluster of real processes — 3 Fluxo nodes behind nginx
 * (ip_hash), redis-server (or, for a scenario with `redis: 'cluster'`, a 3-master Redis Cluster and
 * the sharded adapter; `'cluster-replicas'`, the same with a replica per master), a durable Postgres 15 primary and streaming replica — with steady
 * writers and many SDK readers, then a barrier and the check (check.ts). Used by the `fault` vitest
 * project (faults-nodes.test.ts, faults-backends.test.ts) and by `npm run chaos`.
 *
 * Timeline: readers subscribe → writers start → warm-up → cycles of [fault (late readers join
 * 1 s in; quiet writers publish into the quiet rooms while it is on) → heal → every writer acked
 * again → steady] → writers stop → every node ready → every reader has every event of its rooms
 * in the log, acked or not (caught up, nothing new published meanwhile) → barrier event in every
 * room → every reader has it → the Postgres log is read and compared.
 *
 * The quiet rooms are processes nobody moves, published into only while a fault is on, by writers
 * that fire and forget (no retry: a publish the fault catches stays unknown, and if it committed,
 * only the servers can send it — the late commit, the room tail check): their last
 * events are written during the fault and nothing follows them until the barrier. An event lost by
 * the fan-out is otherwise repaired by the next event of its room (the SDK fetches the gap it opens),
 * so losing the last events of a room that then goes quiet — a node not telling its clients to
 * resync after a bus outage — shows only there, and only if the check looks before the barrier.
 * Such a loss is a race (after a Redis outage: whether a node's publishes, queued meanwhile, are
 * sent before another node has subscribed again), so each room has one publisher, and there are
 * many pairs: one quiet writer per node (each pinned to it by its source address), each with its
 * own quiet rooms, and every reader in every quiet room.
 */
import { rm } from 'node:fs/promises';
import postgres from 'postgres';
import { api } from '../../scripts/topology/api.js';
import { type ClusterHandle, requireBinaries, startCluster } from '../../scripts/topology/cluster.js';
import { forwardFrom, nodeBehind, type SourceForwarder, sourceAddress } from '../../scripts/topology/source-address.js';
import { token } from '../../scripts/topology/tokens.js';
import type { Process, Workflow } from '../../shared/protocol.js';
import { check, type LogEvent, loggedOwed, type ReaderRoom, type Verdict } from './check.js';
import { Reader } from './readers.js';
import { adapterChannel, type FaultContext, type Scenario } from './scenarios.js';
import { type Attempt, HttpSide, publishBarrier, type Write, Writer } from './writers.js';

/** A write attempt slower than this did not fail fast. */
export const WRITE_BOUND_MS = 5000;
/** After a fault is healed, every writer must have a write acked within this. */
export const RECOVERY_BOUND_MS = 15_000;
/** The writers give up on an attempt after this (it counts as `timeout`, and is retried). */
const REQUEST_TIMEOUT_MS = 10_000;
/** Bounds of the end of a run: writers settling, nodes ready, subscribes, barrier acked and delivered. */
const DRAIN_MS = 10_000;
const NODES_READY_MS = 30_000;
const SUBSCRIBED_MS = 30_000;
const BARRIER_ACK_MS = 30_000;
const BARRIER_SEEN_MS = 30_000;
/**
 * After the writes stop and the nodes are ready: every reader has every acked event of its rooms
 * within this, with nothing new published. A reader that reconnected, or was told to resync, may
 * need a subscribe round-trip and a replay from the log; a reader waiting for a later event never
 * gets there.
 */
const CAUGHT_UP_MS = 30_000;
const WARMUP_MS = 3000;
const STEADY_MS = 2000;
const LATE_READER_DELAY_MS = 1000;

const TENANT = 'chaos';
const STAGES = ['a', 'b'] as const;
const WORKFLOWS = 3;
const PROCESSES_PER_WRITER = 3;
/** Processes created at most, per quiet writer, to find one quiet room per Redis Cluster master. */
const QUIET_CANDIDATES = 16;
/** Publishes per second of each quiet writer, while a fault is on. */
const QUIET_RATE_HZ = 4;
const PUBLISH_KEY = 'chaos-publish-key';
/** Source addresses probed for their node; enough /24s to find several per node. */
const PROBED_ADDRESSES = 48;
/** Source addresses (forwarders) the readers are spread over. */
const READER_ADDRESSES = 6;

export interface RunOptions {
  scenario: Scenario;
  /** Keep injecting the fault in cycles for this long (at least one cycle). @default 0 */
  faultPhaseMs?: number;
  /** @default 6 */
  writers?: number;
  /** Writes per second, all writers together. @default 60 */
  rateHz?: number;
  /** Readers subscribed before the writes start. @default 16 */
  readers?: number;
  /** Readers that subscribe while the first fault is on (one more in each later cycle). @default 4 */
  lateReaders?: number;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Keep the cluster's temp dir (node and nginx logs) even when the run passes. */
  keep?: boolean;
  /** Aborted: no further fault cycle starts; the run ends as usual (barrier, check). */
  signal?: AbortSignal;
}

/** Each must be 0. */
export interface Violations {
  /** Events (acked, or committed unacked) a reader room was owed and not given. */
  missing: number;
  duplicates: number;
  outOfOrder: number;
  /** Events from before a reader's subscription start. */
  early: number;
  /** Ids given that the log does not have in that room. */
  phantom: number;
  barrierUnseen: number;
  /**
   * Reader rooms not given every acked event of the room within CAUGHT_UP_MS after the writes
   * stopped, before the barrier was published.
   */
  notCaughtUp: number;
  /** Reader rooms whose subscribe was never acked. */
  notReady: number;
  falseAcks: number;
  rejectedCommitted: number;
  doubleApplied: number;
  /** Write attempts slower than WRITE_BOUND_MS (timeouts included). */
  slowWrites: number;
  /** Heals after which some writer had nothing acked within RECOVERY_BOUND_MS. */
  unrecovered: number;
  /** Write attempts that failed before the first fault (any at all in the no-fault scenario). */
  failuresWithoutFault: number;
  /** Nodes not ready NODES_READY_MS after the last heal. */
  unreadyNodes: number;
  /** No barrier acked within BARRIER_ACK_MS (each room's last log event stands in for it). */
  barrierUnacked: number;
  /** Problems with the fault itself: a drain that did not end cleanly, a node that did not start again. */
  faultTrouble: number;
}

export interface ScenarioResult {
  scenario: string;
  what: string;
  wallMs: number;
  cycles: number;
  writes: { total: number; acked: number; rejected: number; unknown: number; committedUnacked: number; ackedDuringFault: number };
  /** Failed write attempts by kind (`503 store_unavailable`, `timeout`, …). */
  failedByKind: Record<string, number>;
  maxLatencyMs: number;
  /** Per heal: ms until every writer had a write acked (Infinity: not within RECOVERY_BOUND_MS). */
  recoveryMs: number[];
  readers: number;
  readerRooms: number;
  deliveries: number;
  readerReconnects: number;
  /** After the writes stopped: ms until every reader had every acked event of its rooms (Infinity: not within CAUGHT_UP_MS). */
  caughtUpMs: number;
  /** Writers and readers per node at the start. */
  placement: Record<string, { writers: number; readers: number }>;
  verdict: Verdict;
  violations: Violations;
  notes: string[];
  /** The cluster's temp dir, when kept (failed run, or `keep`). */
  dir?: string;
}

export function passed(r: ScenarioResult): boolean {
  return Object.values(r.violations).every((n) => n === 0);
}

/** What the run observed, handed to `summarize`. */
interface Observed {
  cycles: number;
  faults: [from: number, to: number][];
  recoveryMs: number[];
  caughtUpMs: number;
  /** Every writer, the quiet ones included. */
  writers: Writer[];
  barrierWrites: Write[];
  attempts: Attempt[];
  readers: Reader[];
  placement: ScenarioResult['placement'];
  unreadyNodes: number;
  barrierUnacked: boolean;
  trouble: string[];
  notes: string[];
}

export async function runScenario(o: RunOptions): Promise<ScenarioResult> {
  const t0 = Date.now();
  const log = (line: string) => o.log?.(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${o.scenario.name}: ${line}`);
  requireBinaries();
  const cluster = await startCluster({
    nodes: 3,
    nginx: true,
    replica: true,
    durable: true,
    redisCluster: o.scenario.redis === 'cluster-replicas' ? { replicas: 1, nodeTimeoutMs: 2000 } : o.scenario.redis === 'cluster',
    keep: true,
    env: { PUBLISH_API_KEY: PUBLISH_KEY, LOG_LEVEL: 'info' },
    onProgress: log,
  });
  const cleanups: (() => unknown)[] = [];
  let result: ScenarioResult | undefined;
  try {
    const sql = postgres(cluster.postgres.url, { max: 1, onnotice: () => {} });
    cleanups.push(() => sql.end({ timeout: 1 }));
    const observed = await drive(o, cluster, sql, cleanups, log);
    const verdict = check({
      log: await readLog(sql),
      writes: [...observed.writers.flatMap((w) => w.writes), ...observed.barrierWrites],
      readers: observed.readers.flatMap((r) => r.rooms),
      barrier: observed.barrier,
      barrierStandIn: observed.barrierUnacked,
    });
    result = summarize(o.scenario, Date.now() - t0, observed, verdict);
    return result;
  } finally {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
    await cluster.stop();
    if (result && passed(result) && !o.keep) await rm(cluster.dir, { recursive: true, force: true });
    else if (result) result.dir = cluster.dir;
    else log(`logs kept in ${cluster.dir}`);
  }
}

/** Runs the timeline; returns what it saw and the barrier each reader room was owed. */
async function drive(
  o: RunOptions,
  cluster: ClusterHandle,
  sql: postgres.Sql,
  cleanups: (() => unknown)[],
  log: (line: string) => void,
): Promise<Observed & { barrier: Map<string, number> }> {
  const nginx = cluster.nginx!;
  const nWriters = o.writers ?? 6;
  const nLate = o.lateReaders ?? 4;
  const notes: string[] = [];
  const trouble: string[] = [];
  // Tokens must outlive the run, however long the CLI makes it.
  const ttlS = 3600 + Math.ceil((o.faultPhaseMs ?? 0) / 1000);
  const redisCluster = cluster.redisCluster;
  const shards = redisCluster && {
    count: redisCluster.masters.length,
    of: async (room: string) => (await redisCluster.masterOf(adapterChannel(cluster, TENANT, room))).port,
  };
  const { workflows, owned, quiet, rooms } = await setUpTenant(nginx.url, nWriters, cluster.nodes.length, ttlS, shards ?? undefined);
  const processes = owned.flat();
  const { nodeOf, writerAddresses, readerAddresses } = await placeAddresses(nginx.url, nWriters, cluster.nodes.length, notes);

  // --- readers: the tenant room, a workflow room, two process rooms, and every quiet room
  const forwarders: SourceForwarder[] = [];
  cleanups.push(() => Promise.all(forwarders.map((f) => f.close())));
  for (const a of readerAddresses) forwarders.push(await forwardFrom(a, { host: '127.0.0.1', port: nginx.port }));
  const readers: Reader[] = [];
  cleanups.push(() => {
    for (const r of readers) r.close();
  });
  let readersMade = 0;
  const addReader = async () => {
    const i = readersMade++;
    const wf = workflows[i % WORKFLOWS]!;
    const inWf = processes.filter((p) => p.workflowId === wf.id);
    const subscribed = new Set(['tenant', `workflow:${wf.id}`, `process:${inWf[i % inWf.length]!.id}`]);
    subscribed.add(`process:${processes[(i * 7 + 3) % processes.length]!.id}`);
    for (const room of quiet.flat()) subscribed.add(room);
    const reader = new Reader({
      name: `r${i}`,
      url: forwarders[i % forwarders.length]!.url,
      token: await token({ sub: `reader-${i}`, tid: TENANT, role: 'viewer', ttlS }),
      rooms: [...subscribed],
    });
    readers.push(reader);
    return reader;
  };
  for (let i = 0; i < (o.readers ?? 16); i++) await addReader();
  const main = [...readers];
  if (!(await settlesWithin(Promise.all(main.map((r) => r.subscribeAll())), SUBSCRIBED_MS)))
    throw new Error(`readers not subscribed within ${SUBSCRIBED_MS} ms (${main.filter((r) => !r.ready).length} of ${main.length} not)`);
  const placement: ScenarioResult['placement'] = {};
  const place = (node: string, what: 'writers' | 'readers') => {
    placement[node] ??= { writers: 0, readers: 0 };
    placement[node][what]++;
  };
  for (const r of main) place(r.nodes[0] ?? '?', 'readers');
  log(`${main.length} readers subscribed to ${main.reduce((n, r) => n + r.rooms.length, 0)} rooms (${quiet.flat().length} quiet)`);

  // --- writers: each moves its own processes and publishes into a few rooms
  const writers: Writer[] = [];
  for (const [w, localAddress] of writerAddresses.entries()) {
    place(nodeOf.get(localAddress)!, 'writers');
    const mine = owned[w]!;
    writers.push(
      new Writer({
        name: `w${w}`,
        url: nginx.url,
        localAddress,
        tenant: TENANT,
        token: await token({ sub: `writer-${w}`, tid: TENANT, role: 'editor', ttlS }),
        publishKey: PUBLISH_KEY,
        processes: mine.map((p) => ({ id: p.id, stage: p.stage })),
        stages: STAGES,
        publishRooms: ['tenant', `workflow:${mine[0]!.workflowId}`, `process:${mine[0]!.id}`, `workflow:${mine[1]!.workflowId}`],
        rateHz: (o.rateHz ?? 60) / nWriters,
        publishEvery: 4,
        timeoutMs: REQUEST_TIMEOUT_MS,
        drainMs: DRAIN_MS,
      }),
    );
  }
  cleanups.push(() => Promise.all(writers.map((w) => w.stop())));
  for (const w of writers) w.start();
  log(`${writers.length} writers at ${o.rateHz ?? 60}/s; placement ${JSON.stringify(placement)}`);
  await sleep(WARMUP_MS);

  // --- faults. Node faults hit the node with the most writers first, then the others in turn.
  const writerNodes = writerAddresses.map((a) => nodeOf.get(a));
  const targets = cluster.nodes
    .map((n, i) => ({ index: i + 1, writers: writerNodes.filter((x) => x === n.nodeId).length }))
    .sort((a, b) => b.writers - a.writers || a.index - b.index);
  const ctx: FaultContext = {
    cluster,
    sql,
    target: (cycle) => {
      const { index } = targets[cycle % targets.length]!;
      return { index, node: cluster.nodes[index - 1]! };
    },
    redis: () => {
      if (!cluster.redis) throw new Error('no redis');
      return cluster.redis;
    },
    redisCluster: () => {
      if (!cluster.redisCluster) throw new Error('no redis cluster');
      return cluster.redisCluster;
    },
    tenant: TENANT,
    log,
    trouble: (line) => {
      trouble.push(line);
      log(`TROUBLE: ${line}`);
    },
    sleep,
  };
  const faults: [number, number][] = [];
  const recoveryMs: number[] = [];
  const faultEnd = Date.now() + (o.faultPhaseMs ?? 0);
  const late: Promise<void>[] = [];
  const quietWriters: Writer[] = [];
  const quietStops: Promise<void>[] = [];
  cleanups.push(() => Promise.all(quietWriters.map((w) => w.stop())));
  let cycle = 0;
  for (; cycle === 0 || (Date.now() < faultEnd && !o.signal?.aborted); cycle++) {
    if (cycle > 0 && !(await nodesReady(cluster, NODES_READY_MS))) notes.push(`cycle ${cycle}: a node was not ready before the fault`);
    const injected = Date.now();
    const joiners = cycle === 0 ? nLate : Math.min(nLate, 1);
    const joining = setTimeout(() => {
      for (let i = 0; i < joiners; i++) late.push(addReader().then((r) => r.subscribeAll()));
    }, LATE_READER_DELAY_MS);
    // writerAddresses interleave the nodes: the first ones are on different nodes.
    const quietNow = quiet.map(
      (publishRooms, k) =>
        new Writer({
          name: `q${cycle}.${k}`,
          url: nginx.url,
          localAddress: writerAddresses[k % writerAddresses.length]!,
          tenant: TENANT,
          token: '',
          publishKey: PUBLISH_KEY,
          processes: [],
          stages: STAGES,
          publishRooms,
          rateHz: QUIET_RATE_HZ,
          publishEvery: 1,
          timeoutMs: REQUEST_TIMEOUT_MS,
          drainMs: DRAIN_MS,
          // Fire and forget: a publish caught by the fault stays unknown, and if it committed, only
          // the servers can bring it to the readers before the barrier.
          retries: false,
        }),
    );
    quietWriters.push(...quietNow);
    for (const w of quietNow) w.start();
    try {
      await o.scenario.run(ctx, cycle);
    } catch (err) {
      ctx.trouble(`cycle ${cycle}: ${(err as Error).message}`);
    } finally {
      clearTimeout(joining);
      // The quiet rooms' last events are the fault's: nothing more until the barrier.
      quietStops.push(...quietNow.map((w) => w.stop()));
    }
    const healed = Date.now();
    faults.push([injected, healed]);
    log('healed');
    await waitFor(() => writers.every((w) => w.lastAckAt() > healed), RECOVERY_BOUND_MS);
    const took = Math.max(...writers.map((w) => firstAckAfter(w, healed))) - healed;
    recoveryMs.push(took <= RECOVERY_BOUND_MS ? took : Number.POSITIVE_INFINITY);
    log(took <= RECOVERY_BOUND_MS ? `every writer acked again after ${took} ms` : `writes NOT recovered within ${RECOVERY_BOUND_MS} ms`);
    await sleep(STEADY_MS);
  }

  // --- end: writers settle, the cluster is whole, every reader catches up with nothing new
  // published, then the barrier, and every reader has it
  await Promise.all([...writers.map((w) => w.stop()), ...quietStops]);
  const unreadyNodes = (await nodesReady(cluster, NODES_READY_MS))
    ? 0
    : (await Promise.all(cluster.nodes.map(isReady))).filter((ok) => !ok).length;
  if (!(await settlesWithin(Promise.all(late), SUBSCRIBED_MS))) notes.push('a late reader was still not subscribed');
  const allWriters = [...writers, ...quietWriters];
  const caughtUpMs = await caughtUp(
    sql,
    readers.flatMap((r) => r.rooms),
    allWriters.flatMap((w) => w.writes),
  );
  log(
    Number.isFinite(caughtUpMs)
      ? `every reader caught up ${caughtUpMs} ms after the writes and nodes settled`
      : `readers NOT caught up within ${CAUGHT_UP_MS} ms`,
  );
  const barrierSide = new HttpSide('barrier', nginx.url, writerAddresses[0]!, REQUEST_TIMEOUT_MS);
  const barrierWrites: Write[] = [];
  const acked = await publishBarrier(barrierSide, {
    tenant: TENANT,
    publishKey: PUBLISH_KEY,
    rooms,
    deadline: Date.now() + BARRIER_ACK_MS,
    writes: barrierWrites,
  });
  barrierSide.close();
  if (!acked) notes.push(`no barrier acked within ${BARRIER_ACK_MS} ms; each room's last log event stands in for it`);
  const barrier = acked ?? lastIdPerRoom(await readLog(sql), rooms);
  const owed: ReaderRoom[] = readers.flatMap((r) => r.rooms);
  const seen = await waitFor(() => owed.every((r) => r.delivered.includes(barrier.get(r.room)!)), BARRIER_SEEN_MS);
  log(seen ? 'every reader has the barrier' : `barrier still not given everywhere after ${BARRIER_SEEN_MS} ms`);
  for (const r of readers) r.close();

  return {
    cycles: cycle,
    faults,
    recoveryMs,
    caughtUpMs,
    writers: allWriters,
    barrierWrites,
    attempts: [...allWriters.flatMap((w) => w.http.attempts), ...barrierSide.attempts],
    readers,
    placement,
    unreadyNodes,
    barrierUnacked: !acked,
    trouble,
    notes,
    barrier,
  };
}

/**
 * Waits until every subscribed reader room has been given every event of the log it is owed, acked
 * or not (check.ts' `loggedOwed`: the log is final once the writes have stopped), then records how
 * many deliveries each had (`deliveredWhenQuiet`, for the check). An event whose writer never heard
 * back reaches the readers only if the servers send it themselves (the late commit, the room tail
 * check). Resolves with how long that took, or Infinity after CAUGHT_UP_MS.
 */
async function caughtUp(sql: postgres.Sql, rooms: ReaderRoom[], writes: Write[]): Promise<number> {
  const started = Date.now();
  const owedByRoom = loggedOwed(await readLog(sql), rooms, writes);
  let behind = rooms.map((r) => ({ r, ids: owedByRoom.get(r) ?? [] }));
  const ok = await waitFor(() => {
    behind = behind.filter(({ r, ids }) => {
      const given = new Set(r.delivered);
      return !ids.every((id) => given.has(id));
    });
    return behind.length === 0;
  }, CAUGHT_UP_MS);
  for (const r of rooms) r.deliveredWhenQuiet = r.delivered.length;
  return ok ? Date.now() - started : Number.POSITIVE_INFINITY;
}

/**
 * Workflows a⇄b, PROCESSES_PER_WRITER processes per writer (only their owner moves them), and the
 * quiet rooms of each of `nQuiet` quiet writers: processes nobody moves. One room each on one Redis;
 * on a Redis Cluster (`shards.of` gives the master of a room's channel) one per master, so that
 * whichever master a fault hits carries one of each room's own channel (presence, disconnects);
 * a room's events cross on the tenant's relay channel (server/realtime/redis-adapter.ts), whose
 * master the cluster scenarios hit.
 */
async function setUpTenant(
  url: string,
  nWriters: number,
  nQuiet: number,
  ttlS: number,
  shards?: { count: number; of(room: string): Promise<number> },
): Promise<{ workflows: Workflow[]; owned: Process[][]; quiet: string[][]; rooms: string[] }> {
  const admin = await token({ sub: 'chaos-admin', tid: TENANT, role: 'admin', ttlS });
  const workflows: Workflow[] = [];
  for (let i = 0; i < WORKFLOWS; i++) {
    const res = await api<{ data: Workflow }>(url, 'POST', '/api/workflows', {
      token: admin,
      body: { name: `wf${i}`, stages: [...STAGES], transitions: { a: ['b'], b: ['a'] } },
    });
    if (res.status !== 201) throw new Error(`create workflow: ${res.status} ${JSON.stringify(res.body)}`);
    workflows.push(res.body.data);
  }
  const owned: Process[][] = [];
  for (let w = 0; w < nWriters; w++) {
    const list: Process[] = [];
    for (let j = 0; j < PROCESSES_PER_WRITER; j++)
      list.push(await createProcess(url, admin, workflows[(w + j) % WORKFLOWS]!.id, `w${w}p${j}`));
    owned.push(list);
  }
  const quiet: string[][] = [];
  for (let k = 0; k < nQuiet; k++) {
    const mine: string[] = [];
    const covered = new Set<number>();
    for (let j = 0; j < (shards ? QUIET_CANDIDATES : 1); j++) {
      const room = `process:${(await createProcess(url, admin, workflows[j % WORKFLOWS]!.id, `quiet${k}.${j}`)).id}`;
      const shard = shards ? await shards.of(room) : 0;
      if (covered.has(shard)) continue;
      covered.add(shard);
      mine.push(room);
      if (covered.size === (shards?.count ?? 1)) break;
    }
    quiet.push(mine);
  }
  const rooms = ['tenant', ...workflows.map((w) => `workflow:${w.id}`), ...owned.flat().map((p) => `process:${p.id}`), ...quiet.flat()];
  return { workflows, owned, quiet, rooms };
}

/**
 * Creates a process, waiting out the admin's rate limit: the set-up makes dozens in a burst (the
 * quiet rooms' candidates on a Redis Cluster), and was refused with 429 in `npm run chaos`.
 */
async function createProcess(url: string, admin: string, workflowId: string, title: string): Promise<Process> {
  for (let attempt = 1; ; attempt++) {
    const res = await api<{ data: Process; error?: { retryAfterMs?: number } }>(url, 'POST', '/api/processes', {
      token: admin,
      body: { workflowId, title },
    });
    if (res.status === 201) return res.body.data;
    if (res.status !== 429 || attempt >= 20) throw new Error(`create process: ${res.status} ${JSON.stringify(res.body)}`);
    await sleep(res.body.error?.retryAfterMs ?? 500);
  }
}

/** Source addresses for writers and reader forwarders, taken from every node's share in turn. */
async function placeAddresses(url: string, nWriters: number, nodes: number, notes: string[]) {
  const nodeOf = new Map<string, string>();
  const byNode = new Map<string, string[]>();
  for (let k = 1; k <= PROBED_ADDRESSES; k++) {
    const address = sourceAddress(k);
    const node = await nodeBehind(url, address);
    nodeOf.set(address, node);
    byNode.set(node, [...(byNode.get(node) ?? []), address]);
  }
  if (byNode.size < nodes) notes.push(`ip_hash placed ${PROBED_ADDRESSES} source addresses on ${byNode.size} of ${nodes} nodes`);
  const spread = interleave([...byNode.keys()].sort().map((n) => byNode.get(n)!));
  if (spread.length < nWriters + READER_ADDRESSES) throw new Error(`only ${spread.length} source addresses for ${nWriters} writers`);
  return { nodeOf, writerAddresses: spread.slice(0, nWriters), readerAddresses: spread.slice(nWriters, nWriters + READER_ADDRESSES) };
}

function summarize(scenario: Scenario, wallMs: number, ob: Observed, verdict: Verdict): ScenarioResult {
  const failed = ob.attempts.filter((a) => a.kind !== 'ok');
  const failedByKind: Record<string, number> = {};
  for (const a of failed) failedByKind[a.kind] = (failedByKind[a.kind] ?? 0) + 1;
  const firstFault = ob.faults[0]?.[0] ?? Number.POSITIVE_INFINITY;
  const logical = ob.writers.flatMap((w) => w.writes);
  const duringFault = (at: number | undefined) => at !== undefined && ob.faults.some(([from, to]) => at >= from && at <= to);
  const rooms = ob.readers.flatMap((r) => r.rooms);
  return {
    scenario: scenario.name,
    what: scenario.what,
    wallMs,
    cycles: ob.cycles,
    writes: {
      total: logical.length,
      acked: logical.filter((w) => w.outcome === 'acked').length,
      rejected: logical.filter((w) => w.outcome === 'rejected').length,
      unknown: logical.filter((w) => w.outcome === 'unknown').length,
      committedUnacked: verdict.committedUnacked,
      ackedDuringFault: logical.filter((w) => duringFault(w.ackedAt)).length,
    },
    failedByKind,
    maxLatencyMs: Math.max(0, ...ob.attempts.map((a) => a.ms)),
    recoveryMs: ob.recoveryMs,
    readers: ob.readers.length,
    readerRooms: rooms.length,
    deliveries: rooms.reduce((n, r) => n + r.delivered.length, 0),
    readerReconnects: ob.readers.reduce((n, r) => n + r.reconnects, 0),
    caughtUpMs: ob.caughtUpMs,
    placement: ob.placement,
    verdict,
    violations: {
      missing: verdict.missingAcked + verdict.missingUnacked,
      duplicates: verdict.duplicates,
      outOfOrder: verdict.outOfOrder,
      early: verdict.early,
      phantom: verdict.phantom,
      barrierUnseen: verdict.barrierUnseen,
      notCaughtUp: verdict.notCaughtUp,
      notReady: verdict.notReady,
      falseAcks: verdict.falseAcks,
      rejectedCommitted: verdict.rejectedCommitted,
      doubleApplied: verdict.doubleApplied,
      slowWrites: ob.attempts.filter((a) => a.ms > WRITE_BOUND_MS).length,
      unrecovered: ob.recoveryMs.filter((ms) => !Number.isFinite(ms)).length,
      // An attempt still in flight when the fault began may fail because of it.
      failuresWithoutFault: failed.filter((a) => scenario.faultless || a.startedAt + a.ms < firstFault).length,
      unreadyNodes: ob.unreadyNodes,
      barrierUnacked: ob.barrierUnacked ? 1 : 0,
      faultTrouble: ob.trouble.length,
    },
    notes: [...ob.notes, ...ob.trouble, ...slowest(logical)],
  };
}

/** The writes that took longest to be acked, retries included (each try is bounded apart). */
function slowest(writes: Write[]): string[] {
  const took = (w: Write) => w.ackedAt! - w.firstSentAt;
  return writes
    .filter((w) => w.ackedAt !== undefined && took(w) > WRITE_BOUND_MS)
    .sort((a, b) => took(b) - took(a))
    .slice(0, 3)
    .map((w) => `write ${w.tags[0]} (${w.op}) acked ${took(w)} ms after its first try, as id ${w.acked?.[0]?.id}`);
}

async function readLog(sql: postgres.Sql): Promise<LogEvent[]> {
  const rows = await sql<{ id: string; rooms: string[]; tag: string | null }[]>`
    SELECT id::text AS id, rooms, data->>'chaos' AS tag FROM events WHERE tenant_id = ${TENANT} ORDER BY id`;
  return rows.map((r) => ({ id: Number(r.id), rooms: r.rooms, tag: r.tag }));
}

function lastIdPerRoom(log: LogEvent[], rooms: string[]): Map<string, number> {
  const last = new Map<string, number>(rooms.map((r) => [r, 0]));
  for (const e of log) for (const r of e.rooms) if (last.has(r)) last.set(r, Math.max(last.get(r)!, e.id));
  return last;
}

function firstAckAfter(w: Writer, t: number): number {
  return Math.min(...w.writes.map((x) => x.ackedAt ?? Number.POSITIVE_INFINITY).filter((at) => at > t));
}

function isReady(node: { url: string }): Promise<boolean> {
  return fetch(`${node.url}/ready`, { signal: AbortSignal.timeout(2000) }).then(
    (r) => r.status === 200,
    () => false,
  );
}

async function nodesReady(cluster: ClusterHandle, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if ((await Promise.all(cluster.nodes.map(isReady))).every(Boolean)) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

/** Polls `cond` until it holds (true) or `ms` have passed (false). */
async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Whether `p` settles within `ms`. */
function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  const settled = p.then(
    () => true,
    () => true,
  );
  return Promise.race([settled, late]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** [[a1,a2],[b1],[c1,c2]] → [a1,b1,c1,a2,c2]. */
function interleave<T>(lists: T[][]): T[] {
  const out: T[] = [];
  for (let i = 0; lists.some((l) => i < l.length); i++) for (const l of lists) if (i < l.length) out.push(l[i]!);
  return out;
}
