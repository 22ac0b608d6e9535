import { closeAll, spawnWorkers, type Worker } from '../clients.js';
import { benchContext, ENGINES, type Engine, type EngineId } from './engines.js';
import { type FanoutOptions, fanoutOptions, fanoutUsage } from './flags.js';
import { cpuPercent, cpuPerDelivery, latencyAndLoss, maxThenRate, type Phase, subscribeAll } from './measure.js';
import { cpuMicros } from './proc-cpu.js';
import { alternate, check, envelope, mediansBy, type Suite, type SuiteResult, type TargetCheck } from './suite.js';

/**
 * One-node fan-out: Fluxo vs its baselines, each a separate server process, measured in
 * alternation under the same lean load generator. Ratios taken within one run hold on a noisy
 * machine where absolute figures do not.
 */

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

const ctx = benchContext();

async function measure(o: FanoutOptions<EngineId>, engine: Engine, workers: Worker[], round: number): Promise<Measurement[]> {
  const running = await engine.start(ctx);
  try {
    await subscribeAll(workers, engine, running.url, ctx, o.subscribers);
    const backlog = Math.max(2 * o.batch, o.backlog);
    const windows = await maxThenRate(workers, o, running.publish, backlog, { server: () => cpuMicros(running.pid) });
    return windows.map(([phase, w]) => ({
      engine: engine.id,
      round,
      phase,
      deliveriesPerS: w.deliveriesPerS,
      cpuUsPerDelivery: cpuPerDelivery(w),
      serverCpuPct: cpuPercent(w),
      ...latencyAndLoss(w),
    }));
  } finally {
    await closeAll(workers);
    await running.stop();
  }
}

export const fanout: Suite<FanoutResult> = {
  name: 'fanout',
  summary: 'one node, 1,000 subscribers in one room: Fluxo vs plain Socket.IO, Socket.IO on uWS, raw uWS',
  usage: `fanout [options]\n${fanoutUsage(Object.keys(ENGINES))}`,
  async run(args) {
    const o = fanoutOptions(args.argv, args.quick, { all: Object.keys(ENGINES) as EngineId[] });
    const { workers, close } = spawnWorkers(o.processes);
    const started = Date.now();
    let all: Measurement[];
    try {
      all = await alternate(
        o.rounds,
        o.engineIds,
        (id, round) => measure(o, ENGINES[id], workers, round),
        (m) =>
          args.log(
            `round ${m.round} ${m.engine.padEnd(18)} ${m.phase.padEnd(4)} ${String(m.deliveriesPerS).padStart(8)}/s  ${m.cpuUsPerDelivery ?? '-'} µs/delivery  p50 ${m.p50Ms} ms  p99 ${m.p99Ms} ms  cpu ${m.serverCpuPct}%  lost ${m.lost}`,
          ),
      );
    } finally {
      close();
    }
    const medians = mediansBy(all, (m) => `${m.engine} ${m.phase}`, ['publishErrors']);
    const { engineIds, extra: _extra, ...rest } = o;
    const config = { ...rest, payloadBytes: 100, engines: engineIds };
    return { ...envelope('fanout', config, started, checkTargets(medians)), medians, runs: all };
  },
  section: (r) => ({
    title: 'Fan-out, one node',
    about: [
      'All engines ran in the same run, in alternation, each as its own server process, under the same lean',
      'load generator (loadtest/client-worker.ts). `max` = publishers flat out; `rate` = fixed offered',
      'events/s. Server CPU is utime+stime of the server process from /proc over the measured window, divided',
      'by deliveries counted at the clients. Medians over rounds. Figures from a shared, noisy 2-core machine:',
      'read the ratios, not the absolutes.',
    ],
    head: [
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
    ],
    rows: rows(r.medians),
    left: 2,
    legend: { title: 'engines', entries: [...new Set(r.medians.map((m) => m.engine))].map((e) => [e, ENGINES[e].label]) },
    targetsHeading: true,
  }),
};
