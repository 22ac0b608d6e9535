import { token } from '../../scripts/topology/tokens.js';
import { markAll, openWave, shares, type Worker } from '../clients.js';
import { publishLoop } from '../publish-loop.js';
import { sleep } from '../setup.js';
import { type LatencySummary, nowMs, summarize } from '../stats.js';
import type { BenchContext, Engine } from './engines.js';
import type { FanoutOptions } from './flags.js';
import { percentOfCore } from './proc-cpu.js';

/**
 * What the fan-out suites share: subscribers of one engine spread over the client processes, and
 * one measured window at a time — deliveries, latency, lost ids and the CPU time of whichever
 * server processes a suite names.
 */

/** Spreads `n` subscribers of `engine` at `url` over the workers; fails unless every one connected and subscribed. */
export async function subscribeAll(
  workers: Worker[],
  engine: Pick<Engine, 'protocol' | 'room' | 'auth'> & { id: string },
  url: string,
  ctx: BenchContext,
  n: number,
  /** Connects per second per worker. */
  connectRate = 1000,
): Promise<void> {
  const tokens = engine.auth ? [await token({ sub: 'bench-sub', tid: ctx.tenant, role: 'viewer', secret: ctx.secret })] : [];
  const share = shares(n, workers.length);
  const wave = await openWave(workers, (i) => ({
    url,
    protocol: engine.protocol,
    count: share[i]!,
    rate: connectRate,
    tokens,
    rooms: [{ name: engine.room, key: engine.room }],
    localAddresses: [],
  }));
  if (wave.connected < n)
    throw new Error(`${engine.id}: only ${wave.connected}/${n} subscribers connected: ${JSON.stringify(Object.entries(wave.errors))}`);
}

/** CPU time (µs) of one part of the system under test, read at the window's edges. */
export type CpuProbe = () => number;

/** A counter of the system under test (e.g. Redis PUBLISH calls), read before and after a whole phase. */
export type CountProbe = () => Promise<number>;

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
  /**
   * Named counters, read when nothing is in flight — before the phase's first publish and after its
   * drain — so that their deltas over `events` are exact per-event figures.
   */
  counters?: Record<string, CountProbe>;
  /**
   * After the drain, wait up to this long for every answered event to reach every subscriber, then
   * count what did not (`settled`). Unset: no such count.
   */
  settleMs?: number;
}

/** Deliveries over the whole session so far, counted once nothing was in flight any more. */
export interface Settled {
  /** Events answered × subscribers − distinct events received: exact, whatever the order of delivery. */
  missing: number;
  duplicates: number;
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
  /** Events published (and answered) over the whole phase, warm-up and drain included. */
  events: number;
  /** Delta of each of `counters` over the whole phase. */
  counts: Record<string, number>;
  /** Null unless `settleMs` was given. */
  settled: Settled | null;
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
    const counts0 = await readCounters(o.counters);
    const events0 = this.sent;
    const loop = publishLoop({
      publish: async () => {
        await o.publish(o.count);
        this.sent += o.count;
      },
      offered: o.offered,
      // At a fixed rate, one lane per 50 events/s unless the suite says otherwise.
      lanes: o.offered > 0 ? (o.rateLanes ?? Math.max(1, Math.min(o.inflight, Math.ceil(o.offered / 50)))) : o.inflight,
      mayPublish: () => this.backlog() < o.backlogEvents * this.subscribers,
    });
    let window: Omit<Window, 'events' | 'counts' | 'settled'>;
    try {
      await sleep(o.warmupMs);
      const mark0 = await markAll(this.workers);
      const cpu0 = readProbes(o.cpu);
      const sent0 = this.sent;
      const t0 = nowMs();
      await sleep(o.windowMs);
      const mark = await markAll(this.workers);
      const cpu1 = readProbes(o.cpu);
      const sent1 = this.sent;
      const t1 = nowMs();
      // Every delivery in the window is one histogram entry.
      const { hist } = mark;
      const seconds = (t1 - t0) / 1000;
      window = {
        delivered: hist.totalCount,
        seconds,
        deliveriesPerS: Math.round(hist.totalCount / seconds),
        publishedPerS: Math.round((sent1 - sent0) / seconds),
        cpuUs: Object.fromEntries(Object.keys(o.cpu).map((k) => [k, cpu1[k]! - cpu0[k]!])),
        latency: summarize(hist),
        lost: mark.lost - mark0.lost,
        publishErrors: loop.errors(),
      };
    } finally {
      await loop.stop();
      await sleep(o.drainMs);
    }
    const counts1 = await readCounters(o.counters);
    return {
      ...window,
      events: this.sent - events0,
      counts: Object.fromEntries(Object.keys(counts1).map((k) => [k, counts1[k]! - counts0[k]!])),
      settled: o.settleMs === undefined ? null : await this.settle(o.settleMs),
    };
  }

  /**
   * The `lost` of the marks counts id gaps, which out-of-order delivery (concurrent commits on
   * Postgres take ids in another order than they commit) shifts either way; this count does not.
   */
  private async settle(ms: number): Promise<Settled> {
    const deadline = nowMs() + ms;
    while (this.backlog() > 0 && nowMs() < deadline) await sleep(20);
    const { received, duplicates } = await markAll(this.workers);
    return { missing: this.sent * this.subscribers - (received - duplicates), duplicates };
  }
}

const readCounters = async (counters: Record<string, CountProbe> = {}) =>
  Object.fromEntries(await Promise.all(Object.entries(counters).map(async ([k, f]) => [k, await f()] as const)));
const readProbes = (cpu: Record<string, CpuProbe>) => Object.fromEntries(Object.entries(cpu).map(([k, f]) => [k, f()]));

/** CPU µs of a window over the named probes (all of them when none is named). */
const probeUs = (w: Window, probes = Object.keys(w.cpuUs)) => probes.reduce((n, k) => n + (w.cpuUs[k] ?? 0), 0);

/** CPU µs per delivery of a window, over the named probes (all of them when none is named). */
export function cpuPerDelivery(w: Window, probes?: string[]): number | null {
  return w.delivered ? Math.round((probeUs(w, probes) / w.delivered) * 1000) / 1000 : null;
}

/** Share of one core the named probes used in the window, in percent. */
export const cpuPercent = (w: Window, probes?: string[]): number => percentOfCore(probeUs(w, probes), w.seconds);

/** What a fan-out measurement ends with (in this order, as the committed results have it). */
export const latencyAndLoss = (w: Window) => ({ p50Ms: w.latency.p50, p99Ms: w.latency.p99, publishErrors: w.publishErrors, lost: w.lost });

/** `max`: publishers flat out; `rate`: a fixed offered rate of events/s. */
export type Phase = 'max' | 'rate';

/** What one engine's `maxThenRate` publishes through and reads. */
export interface EngineRun {
  /** Named in the error when deliveries went missing or were duplicated. */
  who: string;
  publish(count: number): Promise<void>;
  /** Flat out: at most this many events per subscriber published but not yet received. */
  backlogEvents: number;
  cpu: Record<string, CpuProbe>;
  counters?: Record<string, CountProbe>;
  /** Events/s of the fixed-rate phase, given this engine's flat-out window (see RateOfRound). */
  rate(max: Window): number;
  /** How long a drained phase may wait for deliveries still on their way. @default 5000 */
  settleMs?: number;
}

/**
 * The two windows of the fanout and cross-node suites over subscribers already connected: flat
 * out (`o.batch` events per request, at most `backlogEvents` per subscriber not yet received), then
 * `run.rate(max)` events/s, also `o.batch` events per request: the publisher's own cost stays out
 * of the figures at either rate. Throws when, once a phase drained, a subscriber missed an
 * event or received one twice: such a measurement is broken, whatever its figures.
 */
export async function maxThenRate(workers: Worker[], o: FanoutOptions<string>, run: EngineRun): Promise<[Phase, Window, number][]> {
  // Join-time traffic (Fluxo's presence diffs, which cross Redis too) settles first.
  await sleep(o.quick ? 300 : 1000);
  const session = new Session(workers, o.subscribers);
  const windows: [Phase, Window, number][] = [];
  let offered = 0;
  for (const phase of ['max', 'rate'] as const) {
    if (phase === 'rate') offered = run.rate(windows[0]![1]);
    const window = await session.phase({
      publish: run.publish,
      count: o.batch,
      offered: offered / o.batch,
      inflight: o.inflight,
      backlogEvents: run.backlogEvents,
      warmupMs: o.quick ? 300 : 700,
      windowMs: o.windowS * 1000,
      drainMs: o.quick ? 200 : 1000,
      cpu: run.cpu,
      counters: run.counters,
      settleMs: run.settleMs ?? 5000,
    });
    const { missing, duplicates } = window.settled!;
    if (missing > 0 || duplicates > 0)
      throw new Error(`${run.who} after ${phase}: ${missing} deliveries missing, ${duplicates} duplicated since the subscribers connected`);
    windows.push([phase, window, offered]);
  }
  return windows;
}

/**
 * Events/s of the fixed-rate phase (issue 13, item 5): half of what the reference engine (bare
 * Socket.IO on uWS) delivered flat out in the same round — the suites run it first in each round —
 * so that p99 is compared at one offered load that every engine can carry. `--rate` overrides it;
 * an engine with no reference in its round takes half its own maximum.
 */
export class RateOfRound {
  private readonly half = new Map<string, number>();

  constructor(
    private readonly subscribers: number,
    private readonly fixed: number | undefined,
  ) {}

  /** `ids` with the reference engines first, so that each round's rate is known before the others run. */
  order<T>(ids: T[], isReference: (id: T) => boolean): T[] {
    return [...ids.filter(isReference), ...ids.filter((id) => !isReference(id))];
  }

  /** `round`: the round and anything else that picks the reference (e.g. the kind of Redis). */
  rate(round: string, isReference: boolean): (max: Window) => number {
    return (max) => {
      const half = Math.max(1, Math.round(max.deliveriesPerS / this.subscribers / 2));
      if (isReference) this.half.set(round, half);
      return this.fixed ?? this.half.get(round) ?? half;
    };
  }
}
