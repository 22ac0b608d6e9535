import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sleep } from '../setup.js';
import { decodeHistogram, type LatencySummary, newHistogram, nowMs, summarize, tsxImport } from '../stats.js';
import type { BenchFromWorker, BenchToWorker, Protocol } from './client-worker.js';

/**
 * What the fan-out suites share: client worker processes holding the subscribers, a publish loop
 * (flat out with a bounded backlog, or at a fixed rate) and one measured window — deliveries,
 * latency, lost ids and the CPU time of whichever server processes a suite names.
 */

export interface Worker {
  child: ChildProcess;
  /** Latest unsolicited count: events received since connect. */
  received: number;
  next(): Promise<BenchFromWorker>;
}

export function spawnWorker(): Worker {
  const child = fork(fileURLToPath(new URL('./client-worker.ts', import.meta.url)), [], {
    execArgv: ['--import', tsxImport()],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  child.on('error', (err) => process.stderr.write(`client worker ${child.pid}: ${err.message}\n`));
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

/**
 * `n` client processes, killed by `close()` — and by the process exiting on an error or Ctrl-C,
 * since a forked child dies with its IPC channel (client-worker exits on disconnect).
 */
export function spawnWorkers(n: number): { workers: Worker[]; close(): void } {
  const workers = Array.from({ length: n }, spawnWorker);
  return {
    workers,
    close: () => {
      for (const w of workers) if (w.child.exitCode === null) w.child.kill();
    },
  };
}

export async function ask(workers: Worker[], msg: BenchToWorker | ((i: number) => BenchToWorker)): Promise<BenchFromWorker[]> {
  workers.forEach((w, i) => {
    // After Ctrl-C the workers may be gone while the suite is still stopping: nothing to ask then.
    if (w.child.connected) w.child.send(typeof msg === 'function' ? msg(i) : msg);
  });
  return Promise.all(workers.map((w) => w.next()));
}

export interface Subscribe {
  url: string;
  protocol: Protocol;
  room: string;
  subscribers: number;
  /** Connects per second per worker. */
  connectRate: number;
  auth?: { secret: string; tenant: string };
  /** Names the engine in the error when some did not connect. */
  label: string;
}

/** Spreads the subscribers over the workers; fails unless every one of them connected and subscribed. */
export async function subscribeAll(workers: Worker[], s: Subscribe): Promise<void> {
  const per = Math.ceil(s.subscribers / workers.length);
  const connected = await ask(workers, (i) => ({
    type: 'connect',
    url: s.url,
    protocol: s.protocol,
    count: Math.max(0, Math.min(per, s.subscribers - i * per)),
    room: s.room,
    connectRate: s.connectRate,
    ...(s.auth ? { auth: s.auth } : {}),
  }));
  const ok = connected.reduce((n, m) => n + (m.type === 'connected' ? m.connected : 0), 0);
  if (ok < s.subscribers) {
    const errors = connected.flatMap((m) => (m.type === 'connected' ? Object.entries(m.errors) : []));
    throw new Error(`${s.label}: only ${ok}/${s.subscribers} subscribers connected: ${JSON.stringify(errors)}`);
  }
}

export async function unsubscribeAll(workers: Worker[]): Promise<void> {
  await ask(workers, { type: 'close' });
}

/**
 * Keeps `lanes` publish requests going (flat out) or fires on a fixed schedule, until stopped.
 * Flat out is bounded by `mayPublish`: without it the server would queue (uWS buffers up to its
 * backpressure limit, then drops), and the run would measure queue growth, not throughput.
 */
export function publishLoop(
  publish: () => Promise<void>,
  offered: number,
  inflight: number,
  mayPublish: () => boolean,
  rateLanes?: number,
): { stop(): Promise<void>; errors: () => number } {
  let running = true;
  let errors = 0;
  const one = () => publish().catch(() => void errors++);
  const lanes = offered > 0 ? (rateLanes ?? Math.max(1, Math.min(inflight, Math.ceil(offered / 50)))) : inflight;
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

/**
 * Runs `cleanup` on Ctrl-C or SIGTERM before exiting: Postgres (started through pg_ctl) and temp
 * dirs would otherwise outlive the bench. Returns the function that removes the handlers again.
 */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  const handler = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping what the bench started…\n`);
    cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** Servers running right now, so that an interrupt stops them too (a Fluxo node outlives its Redis). */
export class LiveServers {
  private readonly stops = new Set<() => Promise<void>>();

  /** Returns `stop` that also forgets the server. */
  track(stop: () => Promise<void>): () => Promise<void> {
    this.stops.add(stop);
    return async () => {
      this.stops.delete(stop);
      await stop();
    };
  }

  async stopAll(): Promise<void> {
    const all = [...this.stops];
    this.stops.clear();
    await Promise.allSettled(all.map((s) => s()));
  }
}

/** CPU time (µs) of one part of the system under test, read at the window's edges. */
export type CpuProbe = () => number;

export interface PhaseOptions {
  /** Publishes `count` events (one request); resolves when the server answered. */
  publish(count: number): Promise<void>;
  /** Events per publish request. */
  count: number;
  /** Events/s; 0 = flat out, bounded by `backlogEvents`. */
  offered: number;
  inflight: number;
  /**
   * At a fixed rate, requests that may be in flight at once (default: one per 50 events/s). Each lane
   * waits for its answer, so a server slower to answer than the gap between events needs more.
   */
  rateLanes?: number;
  /** Flat out: at most this many events per subscriber published but not yet received. */
  backlogEvents: number;
  warmupMs: number;
  windowMs: number;
  /** After the window, so the next phase starts with nothing queued. */
  drainMs: number;
  /** Named CPU probes, e.g. { server: … } or { 'node A': …, 'node B': …, redis: … }. */
  cpu: Record<string, CpuProbe>;
}

export interface Window {
  delivered: number;
  seconds: number;
  deliveriesPerS: number;
  /** Events whose publish was answered during the window, per second: what was really offered. */
  publishedPerS: number;
  /** CPU µs spent in the window, per probe name. */
  cpuUs: Record<string, number>;
  latency: LatencySummary;
  /** Events a client never received although it received a later one (id gaps) during the window. */
  lost: number;
  publishErrors: number;
}

/**
 * Publishes to subscribers already connected through `workers` and measures one window. A session
 * spans the phases of one engine: `sent` and the workers' counts both run from connect, so the
 * backlog bound stays right from one phase to the next.
 */
export class Session {
  private sent = 0;

  constructor(
    private readonly workers: Worker[],
    private readonly subscribers: number,
  ) {}

  private backlog(): number {
    return this.sent * this.subscribers - this.workers.reduce((n, w) => n + w.received, 0);
  }

  async phase(o: PhaseOptions): Promise<Window> {
    const mayPublish = () => this.backlog() < o.backlogEvents * this.subscribers;
    const loop = publishLoop(
      async () => {
        await o.publish(o.count);
        this.sent += o.count;
      },
      o.offered,
      o.inflight,
      mayPublish,
      o.rateLanes,
    );
    try {
      await sleep(o.warmupMs);
      const lost0 = sumLost(await ask(this.workers, { type: 'mark' }));
      const cpu0 = readProbes(o.cpu);
      const sent0 = this.sent;
      const t0 = nowMs();
      await sleep(o.windowMs);
      const marks = await ask(this.workers, { type: 'mark' });
      const cpu1 = readProbes(o.cpu);
      const sent1 = this.sent;
      const t1 = nowMs();
      // Every delivery in the window is one histogram entry.
      const hist = newHistogram();
      for (const m of marks) if (m.type === 'mark') hist.add(decodeHistogram(m.hist));
      const seconds = (t1 - t0) / 1000;
      return {
        delivered: hist.totalCount,
        seconds,
        deliveriesPerS: Math.round(hist.totalCount / seconds),
        publishedPerS: Math.round((sent1 - sent0) / seconds),
        cpuUs: Object.fromEntries(Object.keys(o.cpu).map((k) => [k, cpu1[k]! - cpu0[k]!])),
        latency: summarize(hist),
        lost: sumLost(marks) - lost0,
        publishErrors: loop.errors(),
      };
    } finally {
      await loop.stop();
      await sleep(o.drainMs);
    }
  }
}

const sumLost = (marks: BenchFromWorker[]) => marks.reduce((n, m) => n + (m.type === 'mark' ? m.lost : 0), 0);
const readProbes = (cpu: Record<string, CpuProbe>) => Object.fromEntries(Object.entries(cpu).map(([k, f]) => [k, f()]));

/** CPU µs per delivery of a window, over the named probes (all of them when none is named). */
export function cpuPerDelivery(w: Window, probes: string[] = Object.keys(w.cpuUs)): number | null {
  if (!w.delivered) return null;
  const us = probes.reduce((n, k) => n + (w.cpuUs[k] ?? 0), 0);
  return Math.round((us / w.delivered) * 1000) / 1000;
}

/** Share of one core the named probes used in the window, in percent. */
export function cpuPercent(w: Window, probes: string[] = Object.keys(w.cpuUs)): number {
  const us = probes.reduce((n, k) => n + (w.cpuUs[k] ?? 0), 0);
  return Math.round((us / (w.seconds * 1e6)) * 100);
}

/** Flags the flat-out / fixed-rate fan-out suites share (fanout, cross-node). */
export interface FanoutOptions<E extends string> {
  quick: boolean;
  subscribers: number;
  rounds: number;
  windowS: number;
  rate: number;
  inflight: number;
  processes: number;
  batch: number;
  backlog: number;
  engineIds: E[];
  /** The suite's own string flags, as given. */
  extra: Record<string, string | undefined>;
}

export function fanoutUsage(engines: string[]): string {
  return `  --subscribers N      subscribers in the one room (default 1000; quick 100)
  --rounds N           alternations of all engines; the median is reported (default 3; quick 1)
  --window S           measured seconds per phase (default 3; quick 1)
  --rate N             offered events/s of the fixed-rate phase (default 100; quick 50)
  --engines a,b        subset of ${engines.join(', ')}
  --inflight N         publish requests in flight, flat out (default 4)
  --processes N        client processes (default 2)
  --batch N            events per publish request, flat out (default 2000/subscribers, at least 1)
  --backlog N          flat out: events per subscriber published but not yet received (default 50)`;
}

export function fanoutOptions<E extends string>(
  argv: string[],
  quick: boolean,
  engines: { all: readonly E[]; quick?: readonly E[] },
  extraFlags: string[] = [],
): FanoutOptions<E> {
  const flags = ['subscribers', 'rounds', 'window', 'rate', 'engines', 'inflight', 'processes', 'batch', 'backlog', ...extraFlags];
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: Object.fromEntries(flags.map((k) => [k, { type: 'string' as const }])),
  });
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const num = (k: string, dflt: number) => {
    const v = Number(str(k) ?? dflt);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k}: a positive number`);
    return v;
  };
  const subscribers = num('subscribers', quick ? 100 : 1000);
  const engineIds = (str('engines')?.split(',') ?? [...((quick && engines.quick) || engines.all)]) as E[];
  for (const id of engineIds) if (!engines.all.includes(id)) throw new Error(`unknown engine ${id}`);
  return {
    quick,
    subscribers,
    rounds: num('rounds', quick ? 1 : 3),
    windowS: num('window', quick ? 1 : 3),
    rate: num('rate', quick ? 50 : 100),
    inflight: num('inflight', 4),
    processes: num('processes', 2),
    // Flat out, the publisher must outrun the server: with few subscribers one HTTP request per
    // event would measure the publisher instead. It does not change the per-delivery work.
    batch: num('batch', Math.max(1, Math.round(2000 / subscribers))),
    backlog: num('backlog', 50),
    engineIds,
    extra: Object.fromEntries(extraFlags.map((k) => [k, str(k)])),
  };
}
