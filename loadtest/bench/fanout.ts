import { parseArgs } from 'node:util';
import { newRunId, sleep } from '../setup.js';
import { type BenchContext, cpuMicros, ENGINES, type Engine, type EngineId } from './engines.js';
import { checkTargets, type FanoutResult, type Measurement, markdown, type Phase, table } from './fanout-report.js';
import { cpuPercent, cpuPerDelivery, Session, spawnWorkers, subscribeAll, unsubscribeAll, type Worker } from './measure.js';
import { envelope, median, type Suite } from './suite.js';

/**
 * One-node fan-out: Fluxo vs its baselines, each a separate server process, measured in
 * alternation under the same lean load generator. Ratios taken within one run hold on a noisy
 * machine where absolute figures do not.
 */
const USAGE = `fanout [options]
  --subscribers N      subscribers in the one room (default 1000; quick 100)
  --rounds N           alternations of all engines; the median is reported (default 3; quick 1)
  --window S           measured seconds per phase (default 3; quick 1)
  --rate N             offered events/s of the fixed-rate phase (default 100; quick 50)
  --engines a,b        subset of ${Object.keys(ENGINES).join(', ')}
  --inflight N         publish requests in flight, flat out (default 4)
  --processes N        client processes (default 2)
  --batch N            events per publish request, flat out (default 2000/subscribers, at least 1)`;

interface Options {
  quick: boolean;
  subscribers: number;
  rounds: number;
  windowS: number;
  rate: number;
  inflight: number;
  processes: number;
  batch: number;
  engineIds: EngineId[];
}

function options(argv: string[], quick: boolean): Options {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: {
      subscribers: { type: 'string' },
      rounds: { type: 'string' },
      window: { type: 'string' },
      rate: { type: 'string' },
      engines: { type: 'string' },
      inflight: { type: 'string', default: '4' },
      processes: { type: 'string', default: '2' },
      batch: { type: 'string' },
    },
  });
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const subscribers = Number(str('subscribers') ?? (quick ? 100 : 1000));
  const engineIds = (str('engines')?.split(',') ?? Object.keys(ENGINES)) as EngineId[];
  for (const id of engineIds) if (!ENGINES[id]) throw new Error(`unknown engine ${id}`);
  return {
    quick,
    subscribers,
    rounds: Number(str('rounds') ?? (quick ? 1 : 3)),
    windowS: Number(str('window') ?? (quick ? 1 : 3)),
    rate: Number(str('rate') ?? (quick ? 50 : 100)),
    inflight: Number(str('inflight') ?? 4),
    processes: Number(str('processes') ?? 2),
    // Flat out, the publisher must outrun the server: with few subscribers one HTTP request per
    // event would measure the publisher instead. It does not change the per-delivery work.
    batch: Number(str('batch') ?? Math.max(1, Math.round(2000 / subscribers))),
    engineIds,
  };
}

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
        backlogEvents: Math.max(2 * o.batch, 50),
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
    o = options(args.argv, args.quick);
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
      (['max', 'rate'] as Phase[]).map((phase) => {
        const ms = all.filter((m) => m.engine === engine && m.phase === phase);
        const pick = (f: (m: Measurement) => number | null) => median(ms.map((m) => f(m) ?? 0));
        return {
          engine,
          round: 0,
          phase,
          deliveriesPerS: pick((m) => m.deliveriesPerS),
          cpuUsPerDelivery: pick((m) => m.cpuUsPerDelivery),
          serverCpuPct: pick((m) => m.serverCpuPct),
          p50Ms: pick((m) => m.p50Ms),
          p99Ms: pick((m) => m.p99Ms),
          publishErrors: ms.reduce((n, m) => n + m.publishErrors, 0),
          lost: pick((m) => m.lost),
        };
      }),
    );
    const { engineIds, ...rest } = o;
    const config = { ...rest, payloadBytes: 100, engines: engineIds };
    return { ...envelope('fanout', config, started, checkTargets(medians)), medians, runs: all };
  },
};
