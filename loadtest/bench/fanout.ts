import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { newRunId, sleep } from '../setup.js';
import { decodeHistogram, newHistogram, nowMs, summarize, tsxImport } from '../stats.js';
import type { BenchFromWorker, BenchToWorker } from './client-worker.js';
import { type BenchContext, cpuMicros, ENGINES, type Engine, type EngineId } from './engines.js';
import { checkTargets, type FanoutResult, type Measurement, markdown, type Phase, table } from './fanout-report.js';
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

interface Worker {
  child: ChildProcess;
  /** Latest unsolicited count: events received since connect. */
  received: number;
  next(): Promise<BenchFromWorker>;
}

function spawnWorker(): Worker {
  const child = fork(fileURLToPath(new URL('./client-worker.ts', import.meta.url)), [], {
    execArgv: ['--import', tsxImport()],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const queue: BenchFromWorker[] = [];
  const waiting: ((m: BenchFromWorker) => void)[] = [];
  child.on('message', (m: BenchFromWorker) => {
    if (m.type === 'count') {
      worker.received = m.received;
      return;
    }
    const w = waiting.shift();
    if (w) w(m);
    else queue.push(m);
  });
  const worker: Worker = {
    child,
    received: 0,
    next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiting.push(r))),
  };
  return worker;
}

async function ask(workers: Worker[], msg: BenchToWorker | ((i: number) => BenchToWorker)): Promise<BenchFromWorker[]> {
  workers.forEach((w, i) => {
    w.child.send(typeof msg === 'function' ? msg(i) : msg);
  });
  return Promise.all(workers.map((w) => w.next()));
}

/**
 * Keeps `lanes` publish requests going (flat out) or fires on a fixed schedule, until stopped.
 * Flat out is bounded by `mayPublish`: without it the server would queue (uWS buffers up to its
 * backpressure limit, then drops), and the run would measure queue growth, not throughput.
 */
function publishLoop(
  publish: (count: number) => Promise<void>,
  offered: number,
  count: number,
  mayPublish: () => boolean,
): { stop(): Promise<void>; errors: () => number } {
  let running = true;
  let errors = 0;
  const one = () => publish(count).catch(() => void errors++);
  const lanes = offered > 0 ? Math.max(1, Math.min(o.inflight, Math.ceil(offered / 50))) : o.inflight;
  const gap = offered > 0 ? (1000 * lanes) / offered : 0;
  const t0 = nowMs();
  const done = Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      let next = t0 + (gap * lane) / lanes;
      while (running) {
        while (running && !gap && !mayPublish()) await sleep(1);
        if (gap) {
          const wait = next - nowMs();
          if (wait > 0) await sleep(wait);
          next += gap;
        }
        await one();
      }
    }),
  );
  return {
    stop: async () => {
      running = false;
      await done;
    },
    errors: () => errors,
  };
}

async function measure(engine: Engine, workers: Worker[], round: number): Promise<Measurement[]> {
  const running = await engine.start(ctx);
  try {
    const per = Math.ceil(o.subscribers / workers.length);
    const connected = await ask(workers, (i) => ({
      type: 'connect',
      url: running.url,
      protocol: engine.protocol,
      count: Math.max(0, Math.min(per, o.subscribers - i * per)),
      room: engine.room,
      connectRate: 1000,
      ...(engine.auth ? { auth: { secret: ctx.secret, tenant: ctx.tenant } } : {}),
    }));
    const ok = connected.reduce((n, m) => n + (m.type === 'connected' ? m.connected : 0), 0);
    if (ok < o.subscribers) {
      const errors = connected.flatMap((m) => (m.type === 'connected' ? Object.entries(m.errors) : []));
      throw new Error(`${engine.id}: only ${ok}/${o.subscribers} o.subscribers connected: ${JSON.stringify(errors)}`);
    }
    // Let join-time traffic (Fluxo's presence diffs) settle before measuring.
    await sleep(o.quick ? 300 : 1000);
    const out: Measurement[] = [];
    // Events every subscriber should get so far, against what the clients report having received.
    let sent = 0;
    const backlogEvents = Math.max(2 * o.batch, 50);
    const mayPublish = () => sent * o.subscribers - workers.reduce((n, w) => n + w.received, 0) < backlogEvents * o.subscribers;
    const counted = (count: number) => async (n: number) => {
      await running.publish(n);
      sent += count;
    };
    for (const phase of ['max', 'rate'] as Phase[]) {
      const count = phase === 'max' && engine.id !== 'fluxo' ? o.batch : 1;
      const loop = publishLoop(counted(count), phase === 'max' ? 0 : o.rate, count, mayPublish);
      await sleep(o.quick ? 300 : 700);
      const lost0 = (await ask(workers, { type: 'mark' })).reduce((n, m) => n + (m.type === 'mark' ? m.lost : 0), 0);
      const cpu0 = cpuMicros(running.pid);
      const t0 = nowMs();
      await sleep(o.windowS * 1000);
      const marks = await ask(workers, { type: 'mark' });
      const cpu1 = cpuMicros(running.pid);
      const t1 = nowMs();
      await loop.stop();
      // Every delivery in the window is one histogram entry.
      const hist = newHistogram();
      for (const m of marks) if (m.type === 'mark') hist.add(decodeHistogram(m.hist));
      const delivered = hist.totalCount;
      const lost = marks.reduce((n, m) => n + (m.type === 'mark' ? m.lost : 0), 0) - lost0;
      const seconds = (t1 - t0) / 1000;
      const lat = summarize(hist);
      out.push({
        engine: engine.id,
        round,
        phase,
        deliveriesPerS: Math.round(delivered / seconds),
        cpuUsPerDelivery: delivered ? Math.round(((cpu1 - cpu0) / delivered) * 1000) / 1000 : null,
        serverCpuPct: Math.round(((cpu1 - cpu0) / (seconds * 1e6)) * 100),
        p50Ms: lat.p50,
        p99Ms: lat.p99,
        publishErrors: loop.errors(),
        lost,
      });
      // Let queued deliveries drain so the next phase starts clean.
      await sleep(o.quick ? 200 : 1000);
    }
    return out;
  } finally {
    await ask(workers, { type: 'close' });
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
    const workers = Array.from({ length: o.processes }, spawnWorker);
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
      for (const w of workers) w.child.kill();
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
