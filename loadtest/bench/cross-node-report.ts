import type { EngineId } from './engines.js';
import { check, mdTable, provenance, type SuiteResult, type TargetCheck, targetLines, textTable } from './suite.js';

/** `max`: publisher flat out (bounded backlog); `rate`: a fixed offered rate of events/s. */
export type Phase = 'max' | 'rate';

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

const engine = (id: CrossId, server: CrossEngine['server'], redis: CrossEngine['redis'], label: string): CrossEngine => ({
  id,
  server,
  redis,
  label,
});

export const CROSS_ENGINES: Record<CrossId, CrossEngine> = {
  fluxo: engine('fluxo', 'fluxo', 'single', 'Fluxo full path on 2 nodes + redis-server; each event committed to a shared Postgres 15'),
  'fluxo-fanout-only': engine(
    'fluxo-fanout-only',
    'fluxo-fanout-only',
    'single',
    'Fluxo fan-out only on 2 nodes + redis-server: events handed to Socket.IO on node A without the event-log write',
  ),
  'socketio-uws': engine(
    'socketio-uws',
    'socketio-uws',
    'single',
    'bare Socket.IO 4.8 on uWS, 2 nodes, @socket.io/redis-adapter on redis-server',
  ),
  'fluxo-sharded': engine(
    'fluxo-sharded',
    'fluxo',
    'cluster',
    'Fluxo full path on 2 nodes + 3-master Redis Cluster (sharded adapter); each event committed to a shared Postgres 15',
  ),
  'fluxo-fanout-only-sharded': engine(
    'fluxo-fanout-only-sharded',
    'fluxo-fanout-only',
    'cluster',
    'Fluxo fan-out only on 2 nodes + 3-master Redis Cluster (sharded adapter), without the event-log write',
  ),
  'socketio-uws-sharded': engine(
    'socketio-uws-sharded',
    'socketio-uws',
    'cluster',
    'bare Socket.IO 4.8 on uWS, 2 nodes, sharded redis-adapter on the 3-master Redis Cluster',
  ),
};

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

const HEAD = [
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
];

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

const engines = (r: CrossResult) => [...new Set(r.medians.map((m) => m.engine))];

export function table(r: CrossResult): string {
  return [
    textTable(HEAD, rows(r.medians), 2),
    '',
    'engines (publisher on node A, every subscriber on node B):',
    ...engines(r).map((e) => `  ${e}: ${CROSS_ENGINES[e].label}`),
    '',
    'targets (flat out, same run):',
    ...targetLines(r.targets, 'text'),
  ].join('\n');
}

export function markdown(r: CrossResult): string {
  const backlog = Number(r.config.backlog);
  return [
    '## Fan-out across nodes (Redis)',
    '',
    provenance(r),
    '',
    'Two server processes per engine: the publisher posts to node A, every subscriber is connected to node B,',
    'so each event crosses Redis once. `max` = publisher flat out; `rate` = fixed offered events/s. Server CPU',
    'is utime+stime from /proc over the measured window of node A + node B + every redis-server (three on the',
    'Redis Cluster), divided by deliveries counted at the clients; the A / B / Redis columns split it. Postgres',
    '(every process of its data directory) is not in that sum and is shown apart: only the full path writes to it.',
    `Flat out, the publisher keeps at most ${backlog} events per subscriber published but not yet received, so p99`,
    'at max includes up to that queue. Medians over rounds; read the ratios, not the absolutes.',
    '',
    mdTable(HEAD, rows(r.medians)),
    '',
    ...engines(r).map((e) => `- **${e}**: ${CROSS_ENGINES[e].label}`),
    '',
    '### Targets (issue 4)',
    '',
    ...targetLines(r.targets, 'md'),
    '',
  ].join('\n');
}
