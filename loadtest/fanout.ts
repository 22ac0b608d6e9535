import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Histogram } from 'hdr-histogram-js';
import type { FromWorker, MissingReport, ProgressMessage, ReadyMessage, ResultMessage, SubscriberSpec } from './fanout/messages.js';
import { createPublishers, createRooms, type Publisher, type PublishMode } from './fanout/publishers.js';
import { formatCounts, formatThresholds, type RunMeta, type Threshold, targetInfo, toolInfo } from './meta.js';
import { mint, newRunId, sleep, sourceAddresses } from './setup.js';
import { decodeHistogram, type LatencySummary, newHistogram, nowMs, percentileUs, summarize, tsxImport } from './stats.js';

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

interface Worker {
  child: ChildProcess;
  ready: Promise<ReadyMessage>;
  progress: ProgressMessage | null;
  result: Promise<ResultMessage>;
}

function spawnWorker(onProgress: (w: Worker, m: ProgressMessage) => void): Worker {
  const child = fork(fileURLToPath(new URL('./fanout/worker.ts', import.meta.url)), [], {
    execArgv: ['--import', tsxImport()],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let readyResolve!: (m: ReadyMessage) => void;
  let resultResolve!: (m: ResultMessage) => void;
  let failed!: (err: Error) => void;
  const w: Worker = {
    child,
    progress: null,
    ready: new Promise((res, rej) => {
      readyResolve = res;
      failed = rej;
    }),
    result: new Promise((res, rej) => {
      resultResolve = res;
      child.once('exit', (code) => rej(new Error(`client process exited (${code})`)));
    }),
  };
  w.result.catch(() => {});
  child.once('exit', (code) => failed(new Error(`client process exited (${code})`)));
  child.on('message', (m: FromWorker) => {
    if (m.type === 'ready') readyResolve(m);
    else if (m.type === 'progress') onProgress(w, m);
    else if (m.type === 'result') resultResolve(m);
  });
  return w;
}

const PERCENTILES = [50, 75, 90, 95, 99, 99.9, 99.99, 100];

/** Runs the fan-out scenario end to end and returns the measurements. */
export async function runFanout(o: FanoutOptions): Promise<FanoutResult> {
  const run = newRunId();
  const target = await targetInfo(o.url);
  const setup = { ...o, run, publishKey: o.publishKey ?? '' };
  const rooms = await createRooms(setup);
  // Before any subscriber joins: creating a process emits an event the run must not count.
  const publishers = await createPublishers(setup, rooms);
  const addresses = o.sourceAddresses > 0 ? sourceAddresses(o.sourceAddresses) : [];

  // Subscriber i joins room i % rooms, lives in process i % processes.
  const perProcess: SubscriberSpec[][] = Array.from({ length: o.processes }, () => []);
  for (let i = 0; i < o.subscribers; i++) {
    const room = rooms[i % rooms.length]!;
    perProcess[i % o.processes]!.push({
      token: await mint(o.secret, `lt-sub-${i}`, room.tenant, 'viewer'),
      room: room.room,
      roomKey: room.key,
      ...(addresses.length ? { localAddress: addresses[i % addresses.length]! } : {}),
    });
  }

  const total = newHistogram();
  const series: FanoutSample[] = [];
  let tPublish = 0;
  let lastDelivered = 0;
  let lastTick = 0;
  const delivered = () => workers.reduce((n, w) => n + (w.progress?.received ?? 0), 0);
  const tick = () => {
    if (!tPublish) return;
    const now = nowMs();
    const interval = newHistogram();
    for (const w of workers) {
      const pending = pendingHists.get(w);
      if (pending) for (const h of pending) interval.add(h);
      pendingHists.set(w, []);
    }
    total.add(interval);
    const d = delivered();
    const windowMs = Math.max(1, now - (lastTick || tPublish));
    const prev = series[series.length - 1];
    if (windowMs < 500 && prev && last) {
      // The final tick comes moments after the previous one: a sample of a few ms would draw a rate
      // spike (a few deliveries over a few ms) and a latency cliff. Fold it into the previous sample.
      last.hist.add(interval);
      last.count += d - lastDelivered;
      last.windowMs += windowMs;
      const s = summarize(last.hist);
      Object.assign(prev, { deliveredPerS: Math.round((last.count * 1000) / last.windowMs), p50: s.p50, p99: s.p99, max: s.max });
    } else {
      const s = summarize(interval);
      series.push({
        t: Math.round((now - tPublish) / 100) / 10,
        deliveredPerS: Math.round(((d - lastDelivered) * 1000) / windowMs),
        p50: s.p50,
        p99: s.p99,
        max: s.max,
      });
      last = { hist: interval, count: d - lastDelivered, windowMs };
    }
    lastDelivered = d;
    lastTick = now;
  };
  let last: { hist: Histogram; count: number; windowMs: number } | null = null;
  const pendingHists = new Map<Worker, Histogram[]>();
  const workers = perProcess.map(() =>
    spawnWorker((w, m) => {
      w.progress = m;
      const list = pendingHists.get(w) ?? [];
      list.push(decodeHistogram(m.hist));
      pendingHists.set(w, list);
    }),
  );
  const stopAll = () => {
    for (const w of workers) if (w.child.connected) w.child.send({ type: 'exit' });
  };

  try {
    const connectRatePerProcess = Math.max(1, o.connectRate / o.processes);
    workers.forEach((w, i) => {
      w.child.send({
        type: 'start',
        url: o.url,
        subscribers: perProcess[i]!,
        connectRate: connectRatePerProcess,
        progressMs: 1000,
        ...(i === 0 && o.dropNth ? { dropNth: o.dropNth } : {}),
      });
    });
    const readies = await Promise.all(workers.map((w) => w.ready));
    const connectHist = newHistogram();
    const connectErrors: Record<string, number> = {};
    for (const r of readies) {
      connectHist.add(decodeHistogram(r.connectHist));
      for (const [k, v] of Object.entries(r.errors)) connectErrors[k] = (connectErrors[k] ?? 0) + v;
    }
    const connected = readies.reduce((n, r) => n + r.connected, 0);

    const expected: Record<string, number[]> = Object.fromEntries(rooms.map((r) => [r.key, []]));
    const publishErrors: Record<string, number> = {};
    const progressTimer = setInterval(() => {
      tick();
      if (o.progress) {
        const last = series[series.length - 1];
        process.stderr.write(
          `\r[fanout] t=${last?.t ?? 0}s published=${published} delivered=${delivered()} (${last?.deliveredPerS ?? 0}/s) p50=${last?.p50 ?? 0}ms p99=${last?.p99 ?? 0}ms errors=${Object.values(publishErrors).reduce((a, b) => a + b, 0)}   `,
        );
      }
    }, 1000);
    let published = 0;
    tPublish = nowMs();
    const deadline = tPublish + (o.durationS ?? 3600) * 1000;
    const limit = o.events ?? Number.POSITIVE_INFINITY;
    let issued = 0;
    const one = async (p: Publisher) => {
      try {
        expected[p.roomKey]!.push(await p.publish());
        published++;
      } catch (err) {
        const key = err instanceof Error ? err.message.slice(0, 120) : String(err);
        publishErrors[key] = (publishErrors[key] ?? 0) + 1;
      }
    };
    const more = () => issued < limit && nowMs() < deadline;
    const perPublisherInflight = o.mode === 'publish' ? (o.inflight ?? 4) : 1;
    await Promise.all(
      publishers.flatMap((p, pi) =>
        Array.from({ length: perPublisherInflight }, async (_, lane) => {
          // Offered rate: each lane fires on its own fixed schedule, however long the replies take.
          const lanes = publishers.length * perPublisherInflight;
          const gap = o.rate > 0 ? (1000 * lanes) / o.rate : 0;
          let next = tPublish + (gap * (pi * perPublisherInflight + lane)) / lanes;
          while (more()) {
            issued++;
            if (gap > 0) {
              const wait = next - nowMs();
              if (wait > 0) await sleep(wait);
              next += gap;
            }
            await one(p);
          }
        }),
      ),
    );
    const publishEnd = nowMs();
    const expectedDeliveries = perProcess.flat().reduce((n, s) => n + expected[s.roomKey]!.length, 0);
    // Drain: wait until every expected delivery arrived (or the stragglers' time is up).
    const drainUntil = nowMs() + (o.drainMs ?? 5000);
    while (nowMs() < drainUntil && delivered() < expectedDeliveries) await sleep(50);
    for (const w of workers) w.child.send({ type: 'finish', expected });
    const results = await Promise.all(workers.map((w) => w.result));
    clearInterval(progressTimer);
    tick();
    if (o.progress) process.stderr.write('\n');

    const missing: MissingReport[] = [];
    results.forEach((r, wi) => {
      for (const m of r.missing) missing.push({ ...m, subscriber: `${wi}.${m.subscriber}` });
    });
    const deliveredTotal = results.reduce((n, r) => n + r.received, 0);
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
        connected,
        failed: o.subscribers - connected,
        errors: connectErrors,
        timeMs: summarize(connectHist),
      },
      published,
      publishErrors,
      publishedPerS: Math.round(published / durationS),
      expectedDeliveries,
      delivered: deliveredTotal,
      deliveredPerS: Math.round(deliveredTotal / Math.max(durationS, (lastTick - tPublish) / 1000 || durationS)),
      durationS: Math.round(durationS * 100) / 100,
      latencyMs: summarize(total),
      percentiles: PERCENTILES.map((p) => [p, total.totalCount ? percentileUs(total, p) / 1000 : 0]),
      duplicates: results.reduce((n, r) => n + r.duplicates, 0),
      unexpected: results.reduce((n, r) => n + r.unexpected, 0),
      disconnects: workers.reduce((n, w) => n + (w.progress?.disconnects ?? 0), 0),
      missingTotal: results.reduce((n, r) => n + r.missingTotal, 0),
      missing,
      series,
      thresholds: [],
    };
    result.thresholds = fanoutThresholds(result);
    return result;
  } finally {
    for (const p of publishers) p.close();
    stopAll();
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
  const l = r.latencyMs;
  const lines = [
    `run          ${r.startedAt} → ${r.finishedAt} against ${r.target.url}${r.target.node ? ` (node ${r.target.node})` : ''}`,
    `subscribers  ${r.connect.connected}/${r.connect.attempted} connected, connect p50 ${r.connect.timeMs.p50} ms p99 ${r.connect.timeMs.p99} ms, errors ${formatCounts(r.connect.errors)}`,
    `published    ${r.published} events in ${r.durationS} s (${r.publishedPerS}/s), errors ${formatCounts(r.publishErrors)}`,
    `delivered    ${r.delivered}/${r.expectedDeliveries} (${r.deliveredPerS}/s)`,
    `latency      p50 ${l.p50} ms  p90 ${l.p90} ms  p99 ${l.p99} ms  p99.9 ${l.p999} ms  max ${l.max} ms`,
    `missing      ${r.missingTotal}   duplicates ${r.duplicates}   unexpected ${r.unexpected}   disconnects ${r.disconnects}`,
  ];
  for (const m of r.missing.slice(0, 10))
    lines.push(`  subscriber ${m.subscriber} in ${m.roomKey} missed ${m.ids.length}: ${m.ids.slice(0, 20).join(', ')}`);
  lines.push(`thresholds   ${r.thresholds.every((t) => t.ok) ? 'met' : 'NOT met'}`, formatThresholds(r.thresholds));
  return lines.join('\n');
}
