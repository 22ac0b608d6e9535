import { newRunId, sleep } from '../setup.js';
import { type BenchContext, cpuMicros, ENGINES, type Engine, type EngineId } from './engines.js';
import { checkTargets, type FanoutResult, type Measurement, markdown, type Phase, table } from './fanout-report.js';
import {
  cpuPercent,
  cpuPerDelivery,
  type FanoutOptions,
  fanoutOptions,
  fanoutUsage,
  Session,
  spawnWorkers,
  subscribeAll,
  unsubscribeAll,
  type Worker,
} from './measure.js';
import { envelope, medianRow, type Suite } from './suite.js';

/**
 * One-node fan-out: Fluxo vs its baselines, each a separate server process, measured in
 * alternation under the same lean load generator. Ratios taken within one run hold on a noisy
 * machine where absolute figures do not.
 */
const USAGE = `fanout [options]
${fanoutUsage(Object.keys(ENGINES))}`;

type Options = FanoutOptions<EngineId>;

const ctx: BenchContext = {
  secret: 'bench-secret-that-is-long-enough-for-hs256!!',
  publishKey: 'bench-publish-key-0123456789',
  tenant: `bench-${newRunId()}`,
  // ~100 bytes of event data.
  payload: { pad: 'x'.repeat(90) },
};

let o: Options;

async function measure(engine: Engine, workers: Worker[], round: number): Promise<Measurement[]> {
  const running = await engine.start(ctx);
  try {
    await subscribeAll(workers, {
      url: running.url,
      protocol: engine.protocol,
      room: engine.room,
      subscribers: o.subscribers,
      connectRate: 1000,
      label: engine.id,
      ...(engine.auth ? { auth: { secret: ctx.secret, tenant: ctx.tenant } } : {}),
    });
    // Let join-time traffic (Fluxo's presence diffs) settle before measuring.
    await sleep(o.quick ? 300 : 1000);
    const session = new Session(workers, o.subscribers);
    const out: Measurement[] = [];
    for (const phase of ['max', 'rate'] as Phase[]) {
      const w = await session.phase({
        publish: (n) => running.publish(n),
        count: phase === 'max' ? o.batch : 1,
        offered: phase === 'max' ? 0 : o.rate,
        inflight: o.inflight,
        backlogEvents: Math.max(2 * o.batch, o.backlog),
        warmupMs: o.quick ? 300 : 700,
        windowMs: o.windowS * 1000,
        drainMs: o.quick ? 200 : 1000,
        cpu: { server: () => cpuMicros(running.pid) },
      });
      out.push({
        engine: engine.id,
        round,
        phase,
        deliveriesPerS: w.deliveriesPerS,
        cpuUsPerDelivery: cpuPerDelivery(w),
        serverCpuPct: cpuPercent(w),
        p50Ms: w.latency.p50,
        p99Ms: w.latency.p99,
        publishErrors: w.publishErrors,
        lost: w.lost,
      });
    }
    return out;
  } finally {
    await unsubscribeAll(workers);
    await running.stop();
  }
}

export const fanout: Suite<FanoutResult> = {
  name: 'fanout',
  summary: 'one node, 1,000 subscribers in one room: Fluxo vs plain Socket.IO, Socket.IO on uWS, raw uWS',
  usage: USAGE,
  table,
  markdown,
  async run(args) {
    o = fanoutOptions(args.argv, args.quick, { all: Object.keys(ENGINES) as EngineId[] });
    const { workers, close } = spawnWorkers(o.processes);
    const all: Measurement[] = [];
    const started = Date.now();
    try {
      for (let round = 1; round <= o.rounds; round++) {
        for (const id of o.engineIds) {
          for (const m of await measure(ENGINES[id], workers, round)) {
            all.push(m);
            args.log(
              `round ${round} ${id.padEnd(18)} ${m.phase.padEnd(4)} ${String(m.deliveriesPerS).padStart(8)}/s  ${m.cpuUsPerDelivery ?? '-'} µs/delivery  p50 ${m.p50Ms} ms  p99 ${m.p99Ms} ms  cpu ${m.serverCpuPct}%  lost ${m.lost}`,
            );
          }
        }
      }
    } finally {
      close();
    }
    const medians: Measurement[] = o.engineIds.flatMap((engine) =>
      (['max', 'rate'] as Phase[]).map((phase) =>
        medianRow(
          all.filter((m) => m.engine === engine && m.phase === phase),
          ['publishErrors'],
        ),
      ),
    );
    const { engineIds, extra: _extra, ...rest } = o;
    const config = { ...rest, payloadBytes: 100, engines: engineIds };
    return { ...envelope('fanout', config, started, checkTargets(medians)), medians, runs: all };
  },
};
