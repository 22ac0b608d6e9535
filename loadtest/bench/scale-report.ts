import type { LatencySummary } from '../stats.js';
import type { ScalePlan } from './scale-plan.js';
import { check, type Section, type SuiteResult, type TargetCheck } from './suite.js';

/** Issue 13, item 6: one tenant-wide event at every one of the sockets. */
export const TARGET_TENANT_P99_MS = 1000;

export interface NodeFigures {
  node: string;
  planned: number;
  /** Sockets the clients connected from this node's source addresses. */
  connected: number;
  /** `ws_connections_active` of the node after the ramp. */
  active: number;
  sources: string[];
  roomSockets: number;
  rssBaseBytes: number;
  rssBytes: number;
  heapBaseBytes: number | null;
  heapBytes: number | null;
}

export interface ScaleFigures {
  plan: ScalePlan;
  processes: number;
  perNode: NodeFigures[];
  /** Largest |active − share| / share over the nodes, share = the plan's share of the sockets connected. */
  spreadDeviation: number;
  ramp: {
    attempted: number;
    connected: number;
    failed: number;
    /** Not attempted: the ramp ran out of time (--max-ramp). */
    skipped: number;
    errors: Record<string, number>;
    seconds: number;
    perS: number;
    /** Connect + subscribes acked. */
    connectMs: LatencySummary;
    cpuPct: Record<string, number>;
    presenceMessages: number;
    presenceBytes: number;
    presenceSettled: boolean;
    settleS: number;
  };
  tenantEvent: {
    runs: { publishMs: number; held: number; received: number; all: boolean; latency: LatencySummary }[];
    /** Over every socket and every run. */
    latency: LatencySummary;
  };
  sustained: {
    seconds: number;
    rooms: number;
    roomSockets: number;
    expected: number;
    /** Publish calls answered with an error (each the second's events of every room); absent in results before it was counted. */
    refusedPublishes?: number;
    latency: LatencySummary;
    cpuPct: Record<string, number>;
  };
  /** Open files after the ramp: of each node, and of each nginx worker (each ≤ the limit). */
  files: { nodes: number[]; nginxWorkers: number[] };
  delivery: { missing: number; socketsMissing: number; duplicates: number; unexpected: number };
  droppedByServer: number;
}

const n = (x: number) => x.toLocaleString('en');
const mib = (b: number) => (b / 2 ** 20).toFixed(0);
const kib = (b: number) => (b / 1024).toFixed(2);

/** (RSS at N − RSS before any socket) / sockets, over every node together. */
export function bytesPerSocketOverNodes(nodes: readonly Pick<NodeFigures, 'active' | 'rssBaseBytes' | 'rssBytes'>[]): number | null {
  const sockets = nodes.reduce((s, x) => s + x.active, 0);
  return sockets > 0 ? nodes.reduce((s, x) => s + x.rssBytes - x.rssBaseBytes, 0) / sockets : null;
}

function heapPerSocket(nodes: readonly NodeFigures[]): number | null {
  if (nodes.some((x) => x.heapBytes === null || x.heapBaseBytes === null)) return null;
  const sockets = nodes.reduce((s, x) => s + x.active, 0);
  return sockets > 0 ? nodes.reduce((s, x) => s + x.heapBytes! - x.heapBaseBytes!, 0) / sockets : null;
}

const lat = (l: LatencySummary) => `p50 ${n(l.p50)} ms, p99 ${n(l.p99)} ms, max ${n(l.max)} ms (${n(l.count)} deliveries)`;
const cpu = (c: Record<string, number>) =>
  Object.entries(c)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

/** `subscribed`: false when the sockets stayed idle (--subscribe none): nothing was published then. */
export function scaleTargets(f: ScaleFigures, quick: boolean, subscribed: boolean): TargetCheck[] {
  const subject = `fluxo ${f.plan.nodes} nodes, ${n(f.plan.sockets)} sockets${subscribed ? '' : ' (idle, no room)'}`;
  const connected = check(subject, 'sockets connected', f.ramp.connected, f.plan.sockets, { atLeast: true, unit: 'sockets' });
  const spread = quick ? [] : [check(subject, 'sockets per node off the plan', f.spreadDeviation * 100, 10, { unit: '%' })];
  if (!subscribed) return [connected, ...spread];
  return [
    connected,
    check(subject, 'tenant-wide event p99 at every socket', f.tenantEvent.latency.p99, TARGET_TENANT_P99_MS, { unit: 'ms' }),
    check(subject, 'deliveries missing (tenant events and room events)', f.delivery.missing, 0, { unit: 'deliveries' }),
    check(subject, 'duplicate deliveries', f.delivery.duplicates, 0, { unit: 'deliveries' }),
    check(subject, 'publish calls refused (1 event/s to every room)', f.sustained.refusedPublishes ?? 0, 0, { unit: 'calls' }),
    // The sizing: at the full count a node beyond the plan's share would be near its file limit.
    ...spread,
  ];
}

function eventRows(r: ScaleFigures): string[][] {
  return [
    ['tenant-wide event → every socket', lat(r.tenantEvent.latency)],
    [
      '… each event (publish call ms: p50/p99)',
      r.tenantEvent.runs
        .map((x) => `${x.publishMs}: ${x.latency.p50}/${x.latency.p99}${x.all ? '' : ` (${n(x.received)}/${n(x.held)})`}`)
        .join('; '),
    ],
    [
      `1 event/s to ${r.sustained.rooms} rooms of ${n(Math.round(r.sustained.roomSockets / Math.max(1, r.sustained.rooms)))}`,
      `${lat(r.sustained.latency)} of ${n(r.sustained.expected)} expected over ${r.sustained.seconds} s${r.sustained.refusedPublishes ? ` (${r.sustained.refusedPublishes} of ${r.sustained.seconds} publish calls refused)` : ''}`,
    ],
    [
      'exactly once',
      `${n(r.delivery.missing)} missing (${n(r.delivery.socketsMissing)} sockets), ${n(r.delivery.duplicates)} duplicates, ${n(r.delivery.unexpected)} unexpected`,
    ],
  ];
}

export function scaleSection(r: ScaleFigures & SuiteResult): Section {
  const p = r.plan;
  const perSocket = bytesPerSocketOverNodes(r.perNode);
  const heap = heapPerSocket(r.perNode);
  const presencePerSocket = r.ramp.connected ? r.ramp.presenceMessages / r.ramp.connected : 0;
  const rows: string[][] = [
    [
      'sockets connected',
      `${n(r.ramp.connected)}/${n(r.ramp.attempted)} attempted (${n(r.ramp.failed)} failed, ${n(r.ramp.skipped ?? 0)} not attempted in time, ${n(r.droppedByServer)} closed by the server later)`,
    ],
    [
      'connect rate',
      `${n(r.ramp.perS)}/s over ${r.ramp.seconds} s; connect + 1–2 subscribes p50 ${r.ramp.connectMs.p50} ms, p99 ${r.ramp.connectMs.p99} ms`,
    ],
    [
      'topology',
      `${p.nodes} nodes, nginx ${p.nginx.workers} workers × ${n(p.nginx.workerConnections)} connections (rlimit ${n(p.nginx.rlimitNofile)}, reuseport), ${r.processes} client processes, ${p.nodes * p.sourcesPerNode} source /24s`,
    ],
    [
      'open files after the ramp (limit 20,000 each)',
      `nodes ${r.files.nodes.map(n).join(', ')}; nginx workers ${Math.min(...r.files.nginxWorkers)}–${Math.max(...r.files.nginxWorkers)} (${r.files.nginxWorkers.length})`,
    ],
    ['sockets per node (planned → active)', r.perNode.map((x) => `${n(x.planned)} → ${n(x.active)}`).join('; ')],
    ['spread: most off its share of those connected', `${(r.spreadDeviation * 100).toFixed(1)} %`],
    ['RSS per node (before → at N, MiB)', r.perNode.map((x) => `${mib(x.rssBaseBytes)} → ${mib(x.rssBytes)}`).join('; ')],
    [
      'memory per socket',
      `${perSocket === null ? '-' : kib(perSocket)} KiB RSS, ${heap === null ? '-' : kib(heap)} KiB V8 heap (at N − before, after forced GC)`,
    ],
    [
      'presence during the ramp',
      `${n(r.ramp.presenceMessages)} diffs received (${mib(r.ramp.presenceBytes)} MiB, ${presencePerSocket.toFixed(0)} per socket); ${r.ramp.presenceSettled ? 'quiet' : 'NOT quiet'} ${r.ramp.settleS} s after`,
    ],
    ...(r.tenantEvent.runs.length === 0 ? [['events', 'none published: the sockets stayed idle (--subscribe none)']] : eventRows(r)),
    ['CPU % of a core, ramp', cpu(r.ramp.cpuPct)],
    ['CPU % of a core, sustained', cpu(r.sustained.cpuPct)],
  ];
  const errors = Object.entries(r.ramp.errors).map(([k, v]) => `- connect error: ${v} × ${k}`);
  return {
    title: 'Scale: sockets on one box',
    about: [
      'N Fluxo nodes behind one nginx (ip_hash; workers, worker_connections and worker_rlimit_nofile sized from the socket count, `listen … reuseport`), one Redis, one Postgres.',
      "Every socket is a user of one tenant (round robin over the users), subscribed to the tenant room (presence on); a share of each node's sockets also to a room of that node.",
      "Latency is the publisher's send time (in the event) → receipt at the client process; tenant events are published one at a time to node 1 (`POST /api/publish`).",
    ],
    head: ['figure', 'value'],
    rows,
    notes: errors,
  };
}
