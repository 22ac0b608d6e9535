import { token } from '../../scripts/topology/tokens.js';
import type { MarkMessage } from '../client-worker.js';
import { ask, openWave, shares, type Worker } from '../clients.js';
import { publishLoop } from '../publish-loop.js';
import { sleep } from '../setup.js';
import { decodeHistogram, type LatencySummary, newHistogram, nowMs, summarize } from '../stats.js';
import type { BenchContext, Engine } from './engines.js';
import type { FanoutOptions } from './flags.js';

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
      for (const m of marks) hist.add(decodeHistogram(m.hist));
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

const sumLost = (marks: MarkMessage[]) => marks.reduce((n, m) => n + m.lost, 0);
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

/** What a fan-out measurement ends with (in this order, as the committed results have it). */
export const latencyAndLoss = (w: Window) => ({ p50Ms: w.latency.p50, p99Ms: w.latency.p99, publishErrors: w.publishErrors, lost: w.lost });

/** `max`: publishers flat out; `rate`: a fixed offered rate of events/s. */
export type Phase = 'max' | 'rate';

/**
 * The two windows of the fanout and cross-node suites over subscribers already connected: flat
 * out (`o.batch` events per request, at most `backlogEvents` per subscriber not yet received), then
 * `o.rate` events/s, one per request.
 */
export async function maxThenRate(
  workers: Worker[],
  o: FanoutOptions<string>,
  publish: (count: number) => Promise<void>,
  backlogEvents: number,
  cpu: Record<string, CpuProbe>,
): Promise<[Phase, Window][]> {
  // Join-time traffic (Fluxo's presence diffs, which cross Redis too) settles first.
  await sleep(o.quick ? 300 : 1000);
  const session = new Session(workers, o.subscribers);
  const windows: [Phase, Window][] = [];
  for (const phase of ['max', 'rate'] as const) {
    const window = await session.phase({
      publish,
      count: phase === 'max' ? o.batch : 1,
      offered: phase === 'max' ? 0 : o.rate,
      inflight: o.inflight,
      backlogEvents,
      warmupMs: o.quick ? 300 : 700,
      windowMs: o.windowS * 1000,
      drainMs: o.quick ? 200 : 1000,
      cpu,
    });
    windows.push([phase, window]);
  }
  return windows;
}
