import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Histogram } from 'hdr-histogram-js';
import type {
  ClosedMessage,
  CountMessage,
  FromWorker,
  MarkMessage,
  OpenedMessage,
  OpenMessage,
  ToWorker,
  VerifiedMessage,
} from './client-worker.js';
import { decodeHistogram, newHistogram } from './stats.js';

/**
 * The parent side of client-worker.ts, for every tool: the client processes, asking them all at
 * once, and opening sockets over them in waves.
 */

/** `--import` value that lets a child process run TypeScript, wherever the caller runs from. */
export function tsxImport(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
}

/** The latest unsolicited count: events received, sockets held, failed and dropped, presence diffs since the first open. */
export type Counts = Omit<CountMessage, 'type'>;

export interface Worker extends Counts {
  child: ChildProcess;
  next(): Promise<FromWorker>;
}

function spawnWorker(maxOldSpaceMb: number | undefined): Worker {
  const child = fork(fileURLToPath(new URL('./client-worker.ts', import.meta.url)), [], {
    execArgv: ['--import', tsxImport(), ...(maxOldSpaceMb ? [`--max-old-space-size=${maxOldSpaceMb}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  child.on('error', (err) => process.stderr.write(`client worker ${child.pid}: ${err.message}\n`));
  const queue: FromWorker[] = [];
  const waiting: { resolve(m: FromWorker): void; reject(err: Error): void }[] = [];
  // A worker that dies (out of memory, killed) fails the run instead of leaving it waiting for an answer.
  let gone: Error | null = null;
  child.once('exit', (code, signal) => {
    gone = new Error(`client worker ${child.pid} exited (${code ?? signal})`);
    for (const w of waiting.splice(0)) w.reject(gone);
  });
  child.on('message', (m: FromWorker) => {
    if (m.type === 'count') {
      const { type: _t, ...counts } = m;
      Object.assign(worker, counts);
      return;
    }
    const w = waiting.shift();
    if (w) w.resolve(m);
    else queue.push(m);
  });
  const worker: Worker = {
    child,
    ...noCounts(),
    next: () => {
      if (queue.length) return Promise.resolve(queue.shift()!);
      if (gone) return Promise.reject(gone);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
  return worker;
}

const noCounts = (): Counts => ({ received: 0, held: 0, failed: 0, dropped: 0, presence: 0, presenceBytes: 0 });

/** The workers' latest counts added up. */
export function totals(workers: Worker[]): Counts {
  const t = noCounts();
  for (const w of workers) for (const k of Object.keys(t) as (keyof Counts)[]) t[k] += w[k];
  return t;
}

/**
 * `n` client processes, killed by `close()` — and by this process exiting on an error or Ctrl-C,
 * since a forked child dies with its IPC channel. `maxOldSpaceMb`: sockets need memory, not files
 * only, when a process holds ten thousand and more.
 */
export function spawnWorkers(n: number, opts: { maxOldSpaceMb?: number } = {}): { workers: Worker[]; close(): void } {
  const workers = Array.from({ length: n }, () => spawnWorker(opts.maxOldSpaceMb));
  return {
    workers,
    close: () => {
      for (const w of workers) if (w.child.exitCode === null) w.child.kill();
    },
  };
}

interface Replies {
  open: OpenedMessage;
  mark: MarkMessage;
  verify: VerifiedMessage;
  close: ClosedMessage;
}
const REPLY: { [K in keyof Replies]: Replies[K]['type'] } = { open: 'opened', mark: 'mark', verify: 'verified', close: 'closed' };

/** Sends each worker its message (the same, or one per index) and resolves with every answer. */
export async function ask<M extends ToWorker>(workers: Worker[], msg: M | ((i: number) => M)): Promise<Replies[M['type']][]> {
  const sent = workers.map((w, i) => {
    const m = typeof msg === 'function' ? msg(i) : msg;
    // After Ctrl-C the workers may be gone while a suite is still stopping: nothing to ask then.
    if (w.child.connected) w.child.send(m);
    return m.type;
  });
  const replies = await Promise.all(workers.map((w) => w.next()));
  replies.forEach((r, i) => {
    if (r.type !== REPLY[sent[i]!]) throw new Error(`client worker answered ${r.type} to ${sent[i]}`);
  });
  return replies as Replies[M['type']][];
}

/** Every worker's mark as one: counts summed, latency histograms merged (`named` ones by name). */
export interface Mark extends Omit<MarkMessage, 'type' | 'hist' | 'named'> {
  hist: Histogram;
  named: Record<string, Histogram>;
}

/** Asks every worker for its mark: counts since the first open, latency since the last mark. */
export async function markAll(workers: Worker[]): Promise<Mark> {
  const out: Mark = { received: 0, duplicates: 0, dropped: 0, lost: 0, hist: newHistogram(), named: {} };
  for (const m of await ask(workers, { type: 'mark' })) {
    out.received += m.received;
    out.duplicates += m.duplicates;
    out.dropped += m.dropped;
    out.lost += m.lost;
    out.hist.add(decodeHistogram(m.hist));
    for (const [name, h] of Object.entries(m.named)) {
      out.named[name] ??= newHistogram();
      out.named[name].add(decodeHistogram(h));
    }
  }
  return out;
}

/** Shares of `count` over `n` workers, in order: ceil(count / n) each, the rest to the last. */
export function shares(count: number, n: number): number[] {
  const per = Math.ceil(count / n);
  return Array.from({ length: n }, (_, i) => Math.max(0, Math.min(per, count - i * per)));
}

/** The workers' answers to one open added up; `seconds` is the slowest worker's. */
export interface Wave extends Omit<OpenedMessage, 'type' | 'hist'> {
  attempted: number;
  /** Connect time of the sockets that connected, µs. */
  hist: Histogram;
}

/** Opens sockets over the workers (`open(i)` is worker i's share) and adds up what they say. */
export async function openWave(workers: Worker[], open: (i: number) => Omit<OpenMessage, 'type'>): Promise<Wave> {
  const opens = workers.map((_, i) => ({ type: 'open' as const, ...open(i) }));
  const replies = await ask(workers, (i) => opens[i]!);
  const add = (to: Record<string, number>, from: Record<string, number>) => {
    for (const [k, v] of Object.entries(from)) to[k] = (to[k] ?? 0) + v;
  };
  const wave: Wave = {
    attempted: 0,
    connected: 0,
    failed: 0,
    skipped: 0,
    dropped: 0,
    seconds: 0,
    errors: {},
    subscribed: {},
    byNode: {},
    hist: newHistogram(),
  };
  replies.forEach(({ type: _t, hist, seconds, errors, subscribed, byNode, ...counts }, i) => {
    wave.attempted += opens[i]!.count - counts.skipped;
    for (const k of Object.keys(counts) as (keyof typeof counts)[]) wave[k] += counts[k];
    wave.seconds = Math.max(wave.seconds, seconds);
    wave.hist.add(decodeHistogram(hist));
    add(wave.errors, errors);
    add(wave.subscribed, subscribed);
    add(wave.byNode, byNode);
  });
  return wave;
}

/** Resets every socket of every worker; resolves with how many the server had closed before. */
export async function closeAll(workers: Worker[]): Promise<number> {
  return (await ask(workers, { type: 'close' })).reduce((n, r) => n + r.dropped, 0);
}
