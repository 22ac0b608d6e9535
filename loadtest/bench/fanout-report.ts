import { ENGINES, type EngineId } from './engines.js';
import { check, mdTable, provenance, type SuiteResult, type TargetCheck, targetLines, textTable } from './suite.js';

/** `max`: publishers flat out; `rate`: a fixed offered rate of events/s. */
export type Phase = 'max' | 'rate';

export interface Measurement {
  engine: EngineId;
  /** 0 for medians. */
  round: number;
  phase: Phase;
  deliveriesPerS: number;
  /** Server utime+stime (from /proc) over the window, per delivery received by the clients. */
  cpuUsPerDelivery: number | null;
  serverCpuPct: number;
  p50Ms: number;
  p99Ms: number;
  publishErrors: number;
  /** Events a client never received although it received a later one (id gaps) during the window. */
  lost: number;
}

/** Baselines measured for issue 4 on this kind of 2-core machine (median of 5, 1,000 subscribers). */
export const ISSUE_BASELINES: Partial<Record<EngineId, { deliveriesPerS: number; cpuUsPerDelivery: number }>> = {
  'socketio-ws': { deliveriesPerS: 145_000, cpuUsPerDelivery: 7.3 },
  'socketio-uws': { deliveriesPerS: 735_000, cpuUsPerDelivery: 0.92 },
  'uws-raw': { deliveriesPerS: 915_000, cpuUsPerDelivery: 0.67 },
};

export interface FanoutResult extends SuiteResult {
  medians: Measurement[];
  runs: Measurement[];
}

/** The one-node fan-out targets of issue 4, from flat-out medians of the same run. */
export function checkTargets(medians: Measurement[]): TargetCheck[] {
  const get = (e: EngineId) => medians.find((m) => m.engine === e && m.phase === 'max');
  const sioWs = get('socketio-ws');
  const sioUws = get('socketio-uws');
  const checks: TargetCheck[] = [];
  for (const id of ['fluxo', 'fluxo-fanout-only'] as EngineId[]) {
    const f = get(id);
    if (!f?.cpuUsPerDelivery) continue;
    if (sioUws?.cpuUsPerDelivery)
      checks.push(check(id, 'CPU/delivery vs Socket.IO-on-uWS', f.cpuUsPerDelivery / sioUws.cpuUsPerDelivery, 1.3));
    if (sioWs?.cpuUsPerDelivery)
      checks.push(check(id, 'CPU/delivery vs plain Socket.IO', f.cpuUsPerDelivery / sioWs.cpuUsPerDelivery, 0.2));
    if (sioWs?.deliveriesPerS)
      checks.push(check(id, 'deliveries/s vs plain Socket.IO', f.deliveriesPerS / sioWs.deliveriesPerS, 4, { atLeast: true }));
  }
  return checks;
}

function rows(medians: Measurement[]): string[][] {
  const ref = (e: EngineId, p: string) => medians.find((m) => m.engine === e && m.phase === p);
  return medians.map((m) => {
    const sio = ref('socketio-ws', m.phase);
    const base = ISSUE_BASELINES[m.engine];
    return [
      m.engine,
      m.phase,
      m.deliveriesPerS.toLocaleString('en'),
      sio?.deliveriesPerS ? `${(m.deliveriesPerS / sio.deliveriesPerS).toFixed(2)}×` : '-',
      m.cpuUsPerDelivery === null ? '-' : m.cpuUsPerDelivery.toFixed(2),
      sio?.cpuUsPerDelivery && m.cpuUsPerDelivery ? `${(m.cpuUsPerDelivery / sio.cpuUsPerDelivery).toFixed(2)}×` : '-',
      `${m.serverCpuPct} %`,
      String(m.p50Ms),
      String(m.p99Ms),
      m.lost.toLocaleString('en'),
      m.phase === 'max' && base ? `${(base.deliveriesPerS / 1000).toFixed(0)}k/s, ${base.cpuUsPerDelivery} µs` : '',
    ];
  });
}

const HEAD = [
  'engine',
  'phase',
  'deliveries/s',
  'vs sio-ws',
  'µs CPU/deliv',
  'vs sio-ws',
  'server CPU',
  'p50 ms',
  'p99 ms',
  'lost',
  'issue baseline',
];

export function table(result: FanoutResult): string {
  const legend = [...new Set(result.medians.map((m) => m.engine))].map((e) => `  ${e}: ${ENGINES[e].label}`);
  return [
    textTable(HEAD, rows(result.medians), 2),
    '',
    'engines:',
    ...legend,
    '',
    'targets (flat out, same run):',
    ...targetLines(result.targets, 'text'),
  ].join('\n');
}

export function markdown(result: FanoutResult): string {
  return [
    '## Fan-out, one node',
    '',
    provenance(result),
    '',
    'All engines ran in the same run, in alternation, each as its own server process, under the same lean',
    'load generator (loadtest/bench/client-worker.ts). `max` = publishers flat out; `rate` = fixed offered',
    'events/s. Server CPU is utime+stime of the server process from /proc over the measured window, divided',
    'by deliveries counted at the clients. Medians over rounds. Figures from a shared, noisy 2-core machine:',
    'read the ratios, not the absolutes.',
    '',
    mdTable(HEAD, rows(result.medians)),
    '',
    ...[...new Set(result.medians.map((m) => m.engine))].map((e) => `- **${e}**: ${ENGINES[e].label}`),
    '',
    '### Targets (issue 4)',
    '',
    ...targetLines(result.targets, 'md'),
    '',
  ].join('\n');
}
