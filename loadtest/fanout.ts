import type { Histogram } from 'hdr-histogram-js';
import { token } from '../scripts/topology/tokens.js';
import type { MissingReport, RoomSpec } from './client-worker.js';
import { ask, type Mark, markAll, openWave, spawnWorkers } from './clients.js';
import { type RunMeta, type Threshold, targetInfo, toolInfo } from './meta.js';
import { publishLoop } from './publish-loop.js';
import { createPublishers, createRooms, type PublishMode } from './publishers.js';
import { formatCounts, formatLatency, formatThresholds } from './report.js';
import { newRunId, sleep, sourceAddresses } from './setup.js';
import { type LatencySummary, newHistogram, nowMs, percentileUs, summarize } from './stats.js';

export interface FanoutOptions {
  url: string;
  secret: string;
  /** Subscribers in all, spread evenly over rooms and processes. */
  subscribers: number;
  rooms: number;
  publishers: number;
  mode: PublishMode;
  publishKey?: string;
  /** Total events to publish; the run also stops at `durationS`. */
  events?: number;
  durationS?: number;
  /** Offered events/s over all publishers; 0 = flat out. */
  rate: number;
  /** Requests in flight per publish-API publisher when flat out (transitions are always 1). @default 4 */
  inflight?: number;
  payloadBytes: number;
  /** Client processes. */
  processes: number;
  /** Distinct loopback /24 source addresses (127.0.X.1); 0 = the OS default. */
  sourceAddresses: number;
  connectRate: number;
  /** After the last publish, how long to wait for stragglers. @default 5000 */
  drainMs?: number;
  /** Threshold: commit → receipt latency p99 at most this many ms. */
  maxP99Ms?: number;
  /** Test hook: subscriber 0 of process 0 discards its n-th event, which must then be reported missing. */
  dropNth?: number;
  /** Progress line on stderr. */
  progress?: boolean;
}

export interface FanoutSample {
  /** Seconds since publishing began. */
  t: number;
  deliveredPerS: number;
  p50: number;
  p99: number;
  max: number;
}

export interface FanoutResult extends RunMeta {
  scenario: 'fanout';
  options: Omit<FanoutOptions, 'secret' | 'publishKey'>;
  connect: { attempted: number; connected: number; failed: number; errors: Record<string, number>; timeMs: LatencySummary };
  published: number;
  publishErrors: Record<string, number>;
  publishedPerS: number;
  expectedDeliveries: number;
  delivered: number;
  deliveredPerS: number;
  durationS: number;
  latencyMs: LatencySummary;
  /** Percentile → ms, for the histogram chart. */
  percentiles: [number, number][];
  duplicates: number;
  unexpected: number;
  disconnects: number;
  missingTotal: number;
  /** Every subscriber with a gap, with the ids it never received (capped at 10,000 entries overall in JSON). */
  missing: MissingReport[];
  series: FanoutSample[];
  /** Met: every subscriber connected, every publish accepted, every event delivered once; p99 within --max-p99. */
  thresholds: Threshold[];
}

const PERCENTILES = [50, 75, 90, 95, 99, 99.9, 99.99, 100];

/**
 * Latency and delivery rate per second of publishing, from the workers' marks. The last mark comes
 * moments after the one before: a sample of a few ms would draw a rate spike (a few deliveries over
 * a few ms) and a latency cliff, so it is folded into the previous sample.
 */
class Series {
  readonly samples: FanoutSample[] = [];
  readonly total = newHistogram();
  private last: { hist: Histogram; count: number; windowMs: number } | null = null;
  /** When the last mark was taken. */
  lastTick: number;
  private lastDelivered = 0;

  constructor(private readonly t0: number) {
    this.lastTick = t0;
  }

  add(mark: Mark, now: number): void {
    const interval = mark.hist;
    this.total.add(interval);
    const count = mark.received - this.lastDelivered;
    const windowMs = Math.max(1, now - this.lastTick);
    const prev = this.samples.at(-1);
    if (windowMs < 500 && prev && this.last) {
      this.last.hist.add(interval);
      this.last.count += count;
      this.last.windowMs += windowMs;
      const s = summarize(this.last.hist);
      Object.assign(prev, { deliveredPerS: Math.round((this.last.count * 1000) / this.last.windowMs), p50: s.p50, p99: s.p99, max: s.max });
    } else {
      const s = summarize(interval);
      const t = Math.round((now - this.t0) / 100) / 10;
      this.samples.push({ t, deliveredPerS: Math.round((count * 1000) / windowMs), p50: s.p50, p99: s.p99, max: s.max });
      this.last = { hist: interval, count, windowMs };
    }
    this.lastDelivered = mark.received;
    this.lastTick = now;
  }
}

/** Runs the fan-out scenario end to end and returns the measurements. */
export async function runFanout(o: FanoutOptions): Promise<FanoutResult> {
  const run = newRunId();
  const target = await targetInfo(o.url);
  const setup = { ...o, run, publishKey: o.publishKey ?? '' };
  const rooms = await createRooms(setup);
  // Before any subscriber joins: creating a process emits an event the run must not count.
  const publishers = await createPublishers(setup, rooms);
  const addresses = o.sourceAddresses > 0 ? sourceAddresses(o.sourceAddresses) : [];

  // Subscriber i joins room i % rooms, lives in process i % processes, each a user of its own.
  const perProcess = Array.from({ length: o.processes }, () => ({
    tokens: [] as string[],
    rooms: [] as RoomSpec[],
    localAddresses: [] as string[],
  }));
  for (let i = 0; i < o.subscribers; i++) {
    const room = rooms[i % rooms.length]!;
    const p = perProcess[i % o.processes]!;
    p.tokens.push(await token({ sub: `lt-sub-${i}`, tid: room.tenant, role: 'viewer', secret: o.secret }));
    p.rooms.push({ name: room.room, key: room.key });
    if (addresses.length) p.localAddresses.push(addresses[i % addresses.length]!);
  }

  const { workers, close } = spawnWorkers(o.processes);
  try {
    const connect = await openWave(workers, (i) => ({
      url: o.url,
      protocol: 'socket.io',
      count: perProcess[i]!.tokens.length,
      rate: o.connectRate / o.processes,
      ...perProcess[i]!,
      ...(i === 0 && o.dropNth ? { dropNth: o.dropNth } : {}),
    }));

    const expected: Record<string, number[]> = Object.fromEntries(rooms.map((r) => [r.key, []]));
    const publishErrors: Record<string, number> = {};
    let published = 0;
    const tPublish = nowMs();
    const series = new Series(tPublish);
    let mark: Mark | undefined;
    const tick = async () => {
      mark = await markAll(workers);
      series.add(mark, nowMs());
      return mark;
    };
    let ticking = Promise.resolve();
    const progressTimer = setInterval(() => {
      ticking = ticking.then(tick).then(() => {
        if (!o.progress) return;
        const last = series.samples.at(-1);
        const delivered = mark?.received ?? 0;
        process.stderr.write(
          `\r[fanout] t=${last?.t ?? 0}s published=${published} delivered=${delivered} (${last?.deliveredPerS ?? 0}/s) p50=${last?.p50 ?? 0}ms p99=${last?.p99 ?? 0}ms errors=${Object.values(publishErrors).reduce((a, b) => a + b, 0)}   `,
        );
      });
    }, 1000);

    // Each publisher has its lanes (requests in flight), each on its own schedule at a fixed rate.
    const perPublisher = o.mode === 'publish' ? (o.inflight ?? 4) : 1;
    const loop = publishLoop({
      offered: o.rate,
      lanes: publishers.length * perPublisher,
      ...(o.events === undefined ? {} : { total: o.events }),
      publish: async (lane) => {
        const p = publishers[Math.floor(lane / perPublisher)]!;
        try {
          expected[p.roomKey]!.push(await p.publish());
          published++;
        } catch (err) {
          const key = err instanceof Error ? err.message.slice(0, 120) : String(err);
          publishErrors[key] = (publishErrors[key] ?? 0) + 1;
        }
      },
    });
    const deadline = setTimeout(() => void loop.stop(), (o.durationS ?? 3600) * 1000);
    await loop.done;
    clearTimeout(deadline);
    const publishEnd = nowMs();
    const expectedDeliveries = perProcess.flatMap((p) => p.rooms).reduce((n, r) => n + expected[r.key]!.length, 0);
    // Drain: wait until every expected delivery arrived (or the stragglers' time is up).
    const delivered = () => workers.reduce((n, w) => n + w.received, 0);
    const drainUntil = nowMs() + (o.drainMs ?? 5000);
    while (nowMs() < drainUntil && delivered() < expectedDeliveries) await sleep(50);
    clearInterval(progressTimer);
    await ticking;
    const last = await tick();
    if (o.progress) process.stderr.write('\n');
    const verified = await ask(workers, { type: 'verify', expected });

    const missing: MissingReport[] = verified.flatMap((r, wi) => r.missing.map((m) => ({ ...m, subscriber: `${wi}.${m.subscriber}` })));
    const deliveredTotal = last.received;
    const durationS = Math.max(0.001, (publishEnd - tPublish) / 1000);
    const { secret: _s, publishKey: _k, ...shown } = o;
    const result: FanoutResult = {
      tool: toolInfo(null),
      target,
      startedAt: new Date(tPublish).toISOString(),
      finishedAt: new Date(nowMs()).toISOString(),
      scenario: 'fanout',
      options: shown,
      connect: {
        attempted: o.subscribers,
        connected: connect.connected,
        failed: o.subscribers - connect.connected,
        errors: connect.errors,
        timeMs: summarize(connect.hist),
      },
      published,
      publishErrors,
      publishedPerS: Math.round(published / durationS),
      expectedDeliveries,
      delivered: deliveredTotal,
      deliveredPerS: Math.round(deliveredTotal / Math.max(durationS, (series.lastTick - tPublish) / 1000 || durationS)),
      durationS: Math.round(durationS * 100) / 100,
      latencyMs: summarize(series.total),
      percentiles: PERCENTILES.map((p) => [p, series.total.totalCount ? percentileUs(series.total, p) / 1000 : 0]),
      duplicates: last.duplicates,
      unexpected: verified.reduce((n, r) => n + r.unexpected, 0),
      disconnects: last.dropped,
      missingTotal: verified.reduce((n, r) => n + r.missingTotal, 0),
      missing,
      series: series.samples,
      thresholds: [],
    };
    result.thresholds = fanoutThresholds(result);
    return result;
  } finally {
    for (const p of publishers) p.close();
    close();
  }
}

export function fanoutThresholds(r: FanoutResult): Threshold[] {
  const publishErrors = Object.values(r.publishErrors).reduce((a, b) => a + b, 0);
  const t: Threshold[] = [
    {
      name: 'subscribers connected',
      condition: `= ${r.connect.attempted}`,
      actual: String(r.connect.connected),
      ok: r.connect.connected === r.connect.attempted,
    },
    { name: 'events published', condition: '> 0', actual: String(r.published), ok: r.published > 0 },
    { name: 'publish errors', condition: '= 0', actual: formatCounts(r.publishErrors), ok: publishErrors === 0 },
    { name: 'missing deliveries', condition: '= 0', actual: String(r.missingTotal), ok: r.missingTotal === 0 },
    { name: 'duplicate deliveries', condition: '= 0', actual: String(r.duplicates), ok: r.duplicates === 0 },
    { name: 'unexpected deliveries', condition: '= 0', actual: String(r.unexpected), ok: r.unexpected === 0 },
  ];
  if (r.options.maxP99Ms !== undefined)
    t.push({
      name: 'latency p99',
      condition: `≤ ${r.options.maxP99Ms} ms`,
      actual: `${r.latencyMs.p99} ms`,
      ok: r.latencyMs.p99 <= r.options.maxP99Ms,
    });
  return t;
}

/** Human summary of a fan-out result. */
export function formatFanout(r: FanoutResult): string {
  const lines = [
    `run          ${r.startedAt} → ${r.finishedAt} against ${r.target.url}${r.target.node ? ` (node ${r.target.node})` : ''}`,
    `subscribers  ${r.connect.connected}/${r.connect.attempted} connected, connect p50 ${r.connect.timeMs.p50} ms p99 ${r.connect.timeMs.p99} ms, errors ${formatCounts(r.connect.errors)}`,
    `published    ${r.published} events in ${r.durationS} s (${r.publishedPerS}/s), errors ${formatCounts(r.publishErrors)}`,
    `delivered    ${r.delivered}/${r.expectedDeliveries} (${r.deliveredPerS}/s)`,
    `latency      ${formatLatency(r.latencyMs)}`,
    `missing      ${r.missingTotal}   duplicates ${r.duplicates}   unexpected ${r.unexpected}   disconnects ${r.disconnects}`,
  ];
  for (const m of r.missing.slice(0, 10))
    lines.push(`  subscriber ${m.subscriber} in ${m.roomKey} missed ${m.ids.length}: ${m.ids.slice(0, 20).join(', ')}`);
  lines.push(`thresholds   ${r.thresholds.every((t) => t.ok) ? 'met' : 'NOT met'}`, formatThresholds(r.thresholds));
  return lines.join('\n');
}
