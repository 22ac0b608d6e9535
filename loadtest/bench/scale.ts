import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLUSTER_SECRET, type ClusterHandle, requireBinaries, startCluster, startNginx } from '../../scripts/topology/cluster.js';
import { createBoard } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import { ask, markAll, openWave, spawnWorkers, totals } from '../clients.js';
import { publishEvents } from '../publishers.js';
import { balancedAddresses, newRunId, serverMetric, sleep } from '../setup.js';
import { newHistogram, summarize } from '../stats.js';
import { onInterrupt } from './engines.js';
import { suiteFlags } from './flags.js';
import { cpuDelta, percentOfCore, postmasterPid, redisPid, treeCpuMicros } from './proc-cpu.js';
import { GC_HOOK_NODE_OPTIONS, type RssSample, settledRss } from './rss.js';
import {
  groupsPerProcess,
  planScale,
  type ScalePlan,
  scaleNginxConfig,
  scaleSourceAddress,
  socketGroups,
  spreadDeviation,
} from './scale-plan.js';
import { type ScaleFigures, scaleSection, scaleTargets } from './scale-report.js';
import type { Suite, SuiteResult } from './suite.js';
import { envelope } from './suite.js';

/**
 * Issue 13, item 6: many sockets on one box. N Fluxo nodes (as many as the file limit needs) behind
 * one nginx (ip_hash, enough workers for two fds per socket), one Redis, one Postgres; every socket
 * authenticated as one of many users of one tenant and subscribed to the tenant room (presence on),
 * a `roomSize` share of each node's sockets also to that node's own room. Measures the ramp, memory
 * per node, one tenant-wide event reaching every socket, and 1 event/s to each node's room.
 */
const USAGE = `scale [options]
  --sockets N        sockets in all (default 100000; quick 2000)
  --nodes N          Fluxo nodes (default: ceil(sockets / 15000), the least the file limit allows)
  --room-size N      sockets per node also in that node's room, for the sustained phase (default 10000; quick 500)
  --users N          users of the tenant the sockets belong to, round robin (default 100; quick 20)
  --rate N           new sockets per second, all client processes together (default 2000)
  --inflight N       handshakes in flight at most, all together (default 100)
  --max-ramp S       sockets whose turn comes later are not attempted (default 2 × sockets / rate + 60)
  --events N         tenant-wide events, one at a time (default 3; quick 2)
  --sustain S        seconds of 1 event/s to every node's room (default 20; quick 3)
  --settle S         after the ramp, wait at most this long for presence traffic to stop (default 120; quick 15)
  --subscribe W      tenant: every socket subscribes (presence on); none: sockets connect and stay idle, no
                     room, no presence, no events — isolates the handshakes and the file limits (default tenant)
  --processes N      client processes (default: ceil(sockets / 12500), at least 2)`;

const PUBLISH_KEY = 'scale-publish-key-0123456789abc';
const TENANT_EVENT = 'scale.tenant';
const ROOM_EVENT = 'scale.room';
/** A socket's connect and each subscribe give up after this. */
const SOCKET_TIMEOUT_MS = 30_000;
/** A published event not at every socket by then is counted missing (the verify says which). */
const DELIVERY_WAIT_MS = 20_000;

type Options = ReturnType<typeof options>;

function options(argv: string[], quick: boolean) {
  const f = suiteFlags(argv, USAGE);
  const sockets = f.int('sockets', quick ? 2000 : 100_000);
  const rate = f.num('rate', 2000);
  return {
    sockets,
    nodes: f.str('nodes') === undefined ? (quick ? 2 : undefined) : f.int('nodes', 1),
    roomSize: f.int('room-size', quick ? 500 : 10_000),
    users: f.int('users', quick ? 20 : 100),
    rate,
    inflight: f.int('inflight', 100),
    events: f.int('events', quick ? 2 : 3),
    sustainS: f.int('sustain', quick ? 3 : 20),
    settleS: f.int('settle', quick ? 15 : 120, 0),
    subscribe: f.one('subscribe', ['tenant', 'none'], 'tenant') === 'tenant',
    maxRampS: f.int('max-ramp', Math.ceil((2 * sockets) / rate + 60)),
    processes: f.str('processes') === undefined ? undefined : f.int('processes', 1),
    quick,
  };
}

export interface ScaleResult extends SuiteResult, ScaleFigures {}

async function publish(
  url: string,
  events: { room: string; type: string }[],
  tenant: string,
  pad: string,
): Promise<{ ids: number[]; ms: number }> {
  const t0 = performance.now();
  const sent = () => performance.timeOrigin + performance.now();
  const ids = await publishEvents(
    url,
    PUBLISH_KEY,
    events.map((e) => ({ tenant, room: e.room, type: e.type, data: { sent: sent(), pad } })),
  );
  return { ids, ms: performance.now() - t0 };
}

/** Resolves when `done()` holds, or after `ms` (false then). */
async function until(done: () => boolean, ms: number, stepMs = 100): Promise<boolean> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) return false;
    await sleep(stepMs);
  }
  return true;
}

/** Open files of a process (its /proc/<pid>/fd entries); -1 when it is gone. */
function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** Direct children of a process (nginx's workers), from /proc/<pid>/task/<pid>/children. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** CPU of every part, as % of one core over `seconds`; the client processes summed as `clients`. */
function cpuPct(before: Record<string, number>, after: Record<string, number>, seconds: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(cpuDelta(before, after))) {
    const key = k.startsWith('client-') ? 'clients' : k;
    out[key] = (out[key] ?? 0) + v;
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, percentOfCore(v, seconds)]));
}

/** `onStarted` gets what must be stopped on an interrupt too (an interrupt exits before any `finally`). */
async function measure(
  cluster: ClusterHandle,
  plan: ScalePlan,
  o: Options,
  log: (l: string) => void,
  onStarted: (stop: () => unknown) => void,
): Promise<ScaleFigures> {
  const nodes = cluster.nodes;
  const nodeIds = nodes.map((n) => n.nodeId);
  const baseline: RssSample[] = [];
  for (const n of nodes) baseline.push(await settledRss(n.proc.pid!));
  const nginx = await startNginx(
    join(cluster.dir, 'nginx'),
    nodes.map((n) => `127.0.0.1:${n.port}`),
    undefined,
    { edit: (conf) => scaleNginxConfig(conf, plan.nginx) },
  );
  onStarted(nginx.stop);
  try {
    const tenant = `scale-${newRunId()}`;
    const admin = await token({ sub: 'scale-admin', tid: tenant, role: 'admin', secret: CLUSTER_SECRET });
    const rooms = new Map<string, string>();
    for (const id of nodeIds) rooms.set(id, `workflow:${(await createBoard(nginx.url, admin)).id}`);
    // ip_hash maps /24s to nodes about evenly: 20 candidates per address wanted is far more than enough.
    const candidates = Math.min(254 * 254, nodeIds.length * plan.sourcesPerNode * 20 + 100);
    const addresses = await balancedAddresses(
      nginx.url,
      nodeIds,
      plan.sourcesPerNode,
      Array.from({ length: candidates }, (_, i) => scaleSourceAddress(i)),
    );
    const groups = socketGroups(
      new Map(nodeIds.map((id, k) => [id, { count: plan.perNode[k]!, addresses: addresses.get(id)!, room: rooms.get(id)! }])),
      o.roomSize,
    );
    const tokens = await Promise.all(
      Array.from({ length: o.users }, (_, u) =>
        token({ sub: `scale-u${u}`, name: `User ${u}`, tid: tenant, role: 'viewer', secret: CLUSTER_SECRET }),
      ),
    );
    const processes = o.processes ?? plan.clientProcesses;
    // The node rooms' events are measured apart from the tenant-wide ones.
    const measured = groups.map((g) => ({
      ...g,
      rooms: o.subscribe ? g.rooms.map((r) => ({ ...r, histogram: r.key === 'tenant' ? 'tenant' : 'room' })) : [],
    }));
    const perProcess = groupsPerProcess(measured, processes);
    // 12,500 lean sockets with their id sets stay well under 2 GiB.
    const { workers, close } = spawnWorkers(processes, { maxOldSpaceMb: 2048 });
    onStarted(close);
    try {
      const roots: Record<string, number> = {
        ...Object.fromEntries(nodes.map((n) => [n.nodeId, n.proc.pid!])),
        nginx: nginx.pid,
        redis: await redisPid(cluster.redis!.port),
        postgres: await postmasterPid(cluster.postgres.url),
        ...Object.fromEntries(workers.map((w, i) => [`client-${i}`, w.child.pid!])),
      };
      // Ramp.
      log(
        `ramp: ${o.sockets} sockets over ${nodes.length} nodes, ${plan.nginx.workers} nginx workers, ${processes} client processes, ${addresses.size * plan.sourcesPerNode} source addresses`,
      );
      const cpu0 = treeCpuMicros(roots);
      const t0 = Date.now();
      const progress = setInterval(() => {
        const t = totals(workers);
        log(
          `  ${Math.round((Date.now() - t0) / 1000)} s: ${t.held} held, ${t.failed} failed, ${t.dropped} dropped, ${t.presence} presence messages received`,
        );
      }, 5000);
      const wave = await openWave(workers, (i) => ({
        url: nginx.url,
        protocol: 'socket.io',
        count: perProcess[i]!.reduce((n, g) => n + g.count, 0),
        groups: perProcess[i]!,
        rooms: [],
        localAddresses: [],
        // Rotated per process, so the users' sockets spread over nodes.
        tokens: tokens.map((_, u) => tokens[(u + i) % tokens.length]!),
        rate: o.rate / processes,
        maxInflight: Math.max(1, Math.round(o.inflight / processes)),
        timeoutMs: SOCKET_TIMEOUT_MS,
        deadline: t0 + o.maxRampS * 1000,
        clock: 'sent',
        // Only sockets that connected can be expected to receive (the failed ones are in the ramp's figures).
        verifyConnectedOnly: true,
      })).finally(() => clearInterval(progress));
      const rampS = (Date.now() - t0) / 1000;
      const rampCpu = cpuPct(cpu0, treeCpuMicros(roots), rampS);
      const { connected, skipped, errors, byNode: byNodePlanned, hist: connectHist, seconds: slowest } = wave;
      const inRoom = Object.entries(wave.subscribed).reduce((n, [key, v]) => n + (key === 'tenant' ? 0 : v), 0);
      log(
        `ramp: ${connected}/${o.sockets} connected in ${slowest.toFixed(1)} s (${Math.round(connected / slowest)}/s); CPU % ${JSON.stringify(rampCpu)}`,
      );
      // Presence settles: every join of the ramp was a diff to the whole tenant room.
      let last = -1;
      let quietSince = Date.now();
      const settled = await until(
        () => {
          const p = totals(workers).presence;
          if (p !== last) [last, quietSince] = [p, Date.now()];
          return Date.now() - quietSince >= 3000;
        },
        o.settleS * 1000,
        250,
      );
      const afterRamp = totals(workers);
      const settleS = (Date.now() - t0) / 1000 - rampS;
      log(
        `presence: ${afterRamp.presence} messages (${(afterRamp.presenceBytes / 2 ** 20).toFixed(1)} MiB) received; ${settled ? 'quiet' : 'still arriving'} ${settleS.toFixed(0)} s after the ramp`,
      );
      const nodeFiles = nodes.map((x) => openFiles(x.proc.pid!));
      const nginxFiles = childrenOf(nginx.pid).map(openFiles);
      log(`open files: nodes ${nodeFiles.join('/')}, nginx workers ${nginxFiles.join('/')}`);
      const actual: Record<string, number> = {};
      for (const n of nodes) actual[n.nodeId] = (await serverMetric(n.url, 'ws_connections_active')) ?? Number.NaN;
      const rss: RssSample[] = [];
      for (const n of nodes) rss.push(await settledRss(n.proc.pid!));
      const perNode = nodes.map((n, k) => ({
        node: n.nodeId,
        planned: plan.perNode[k]!,
        connected: byNodePlanned[n.nodeId] ?? 0,
        active: actual[n.nodeId]!,
        sources: addresses.get(n.nodeId)!,
        roomSockets: !o.subscribe ? 0 : groups.filter((g) => g.node === n.nodeId && g.rooms.length > 1).reduce((s, g) => s + g.count, 0),
        rssBaseBytes: baseline[k]!.bytes,
        rssBytes: rss[k]!.bytes,
        heapBaseBytes: baseline[k]!.heapUsedBytes,
        heapBytes: rss[k]!.heapUsedBytes,
      }));
      // One tenant-wide event at a time, each to every socket.
      const tenantIds: number[] = [];
      const tenantRuns = [];
      const pad = 'x'.repeat(90);
      const publishUrl = nodes[0]!.url;
      for (let e = 0; e < (o.subscribe ? o.events : 0); e++) {
        await markAll(workers);
        const before = totals(workers).received;
        const held = totals(workers).held;
        const { ids, ms } = await publish(publishUrl, [{ room: 'tenant', type: TENANT_EVENT }], tenant, pad);
        tenantIds.push(...ids);
        const all = await until(() => totals(workers).received - before >= held, DELIVERY_WAIT_MS, 20);
        await sleep(300); // the last deliveries arrive and are counted
        const h = (await markAll(workers)).named.tenant ?? newHistogram();
        tenantRuns.push({
          publishMs: Math.round(ms * 10) / 10,
          held,
          received: totals(workers).received - before,
          all,
          latency: summarize(h),
          hist: h,
        });
        log(`tenant event ${e + 1}: ${tenantRuns.at(-1)!.received}/${held} received, ${JSON.stringify(summarize(h))}`);
        await sleep(1000);
      }
      const pooled = newHistogram();
      for (const r of tenantRuns) pooled.add(r.hist);
      // 1 event/s to every node's room, one publish call (one commit) per second.
      const roomIds: Record<string, number[]> = Object.fromEntries(nodeIds.map((id) => [id, []]));
      await markAll(workers);
      const e0 = totals(workers).received;
      const cpu1 = treeCpuMicros(roots);
      const s0 = Date.now();
      // A refused publish (the node's write deadline passed: 503, "may have been applied") is counted,
      // not retried — the publish API has no idempotency key, so a retry could commit it twice — and
      // its events are not expected; if it was applied after all, they show as `unexpected`.
      const refused: string[] = [];
      for (let s = 0; s < (o.subscribe ? o.sustainS : 0); s++) {
        const next = s0 + (s + 1) * 1000;
        try {
          const { ids } = await publish(
            publishUrl,
            nodeIds.map((id) => ({ room: rooms.get(id)!, type: ROOM_EVENT })),
            tenant,
            pad,
          );
          for (const [k, id] of ids.entries()) roomIds[nodeIds[k]!]!.push(id);
        } catch (err) {
          refused.push(err instanceof Error ? err.message : String(err));
          log(`sustained: publish ${s + 1} refused: ${refused.at(-1)}`);
        }
        await sleep(Math.max(0, next - Date.now()));
      }
      const sustainCpu = cpuPct(cpu1, treeCpuMicros(roots), (Date.now() - s0) / 1000);
      const expectedRoom = inRoom * (o.sustainS - refused.length);
      await until(() => totals(workers).received - e0 >= expectedRoom, 5000);
      await sleep(300); // the last deliveries arrive and are counted
      const sustained = (await markAll(workers)).named.room ?? newHistogram();
      log(`sustained: ${sustained.totalCount}/${expectedRoom} deliveries, ${JSON.stringify(summarize(sustained))}`);
      const verified = await ask(workers, { type: 'verify', expected: { tenant: tenantIds, ...roomIds } });
      const { duplicates } = await markAll(workers);
      const end = totals(workers);
      return {
        plan,
        processes,
        perNode,
        // Against the plan's shares of the sockets that connected: a ramp cut short is still judged on its spread.
        spreadDeviation: spreadDeviation(
          Object.fromEntries(perNode.map((p) => [p.node, (p.planned * connected) / o.sockets])),
          Object.fromEntries(perNode.map((p) => [p.node, p.active])),
        ),
        ramp: {
          attempted: o.sockets - skipped,
          connected,
          failed: o.sockets - skipped - connected,
          skipped,
          errors,
          seconds: Math.round(slowest * 10) / 10,
          perS: Math.round(connected / slowest),
          connectMs: summarize(connectHist),
          cpuPct: rampCpu,
          presenceMessages: afterRamp.presence,
          presenceBytes: afterRamp.presenceBytes,
          presenceSettled: settled,
          settleS: Math.round(settleS),
        },
        tenantEvent: {
          runs: tenantRuns.map(({ hist: _h, ...r }) => r),
          latency: summarize(pooled),
        },
        sustained: {
          seconds: o.sustainS,
          rooms: nodeIds.length,
          roomSockets: inRoom,
          expected: expectedRoom,
          refusedPublishes: refused.length,
          latency: summarize(sustained),
          cpuPct: sustainCpu,
        },
        files: { nodes: nodeFiles, nginxWorkers: nginxFiles },
        delivery: {
          missing: verified.reduce((n, v) => n + v.missingTotal, 0),
          // A socket in two rooms may have missed ids of both.
          socketsMissing: verified.reduce((n, v) => n + new Set(v.missing.map((m) => m.subscriber)).size, 0),
          duplicates,
          unexpected: verified.reduce((n, v) => n + v.unexpected, 0),
        },
        droppedByServer: end.dropped,
      };
    } finally {
      close();
    }
  } finally {
    await nginx.stop();
  }
}

async function run(args: { quick: boolean; argv: string[]; log: (l: string) => void }): Promise<ScaleResult> {
  const started = Date.now();
  const o = options(args.argv, args.quick);
  const plan = planScale(o.sockets, o.nodes === undefined ? {} : { nodes: o.nodes });
  requireBinaries();
  const env: Record<string, string> = {
    LOG_LEVEL: 'warn',
    PUBLISH_API_KEY: PUBLISH_KEY,
    // Capacity, not a person's pace: the limiter still runs, on every handshake and subscribe.
    RATE_LIMITS: 'handshake=1000000/1,subscribe=1000000/1,publish=1000000/1',
    // Behind nginx every socket comes from 127.0.0.1 to the node, and a user here has hundreds of sockets.
    MAX_SOCKETS_PER_USER: '1000000',
    MAX_SOCKETS_PER_IP: '1000000',
    NODE_OPTIONS: GC_HOOK_NODE_OPTIONS,
  };
  args.log(`plan: ${JSON.stringify(plan)}`);
  const starting = startCluster({ nodes: plan.nodes, env, onProgress: (w) => args.log(w) });
  const running: (() => unknown)[] = [];
  const stop = async () => {
    for (const s of running.splice(0)) await s();
    await (await starting.catch(() => null))?.stop();
  };
  const offInterrupt = onInterrupt(stop);
  let figures: ScaleFigures;
  try {
    figures = await measure(await starting, plan, o, args.log, (s) => running.push(s));
  } finally {
    offInterrupt();
    await stop();
  }
  const { quick: _q, ...config } = o;
  return { ...envelope('scale', config, started, scaleTargets(figures, o.quick, o.subscribe)), ...figures };
}

export const scale: Suite<ScaleResult> = {
  name: 'scale',
  summary:
    '100,000 sockets on one box: N nodes behind nginx, connect rate, RSS per node, tenant-wide event p99, 1 event/s to 10k-socket rooms',
  usage: USAGE,
  run,
  section: scaleSection,
};
