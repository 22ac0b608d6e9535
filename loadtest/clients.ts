import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Histogram } from 'hdr-histogram-js';
import type { ClosedMessage, FromWorker, MarkMessage, OpenedMessage, OpenMessage, ToWorker, VerifiedMessage } from './client-worker.js';
import { decodeHistogram, newHistogram } from './stats.js';

/**
 * The parent side of client-worker.ts, for every tool: the client processes, asking them all at
 * once, and opening sockets over them in waves.
 */

/** `--import` value that lets a child process run TypeScript, wherever the caller runs from. */
export function tsxImport(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
}

export interface Worker {
  child: ChildProcess;
  /** From the latest unsolicited count: events received, sockets held and failed since the first open. */
  received: number;
  held: number;
  failed: number;
  next(): Promise<FromWorker>;
}

function spawnWorker(): Worker {
  const child = fork(fileURLToPath(new URL('./client-worker.ts', import.meta.url)), [], {
    execArgv: ['--import', tsxImport()],
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
      Object.assign(worker, { received: m.received, held: m.held, failed: m.failed });
      return;
    }
    const w = waiting.shift();
    if (w) w.resolve(m);
    else queue.push(m);
  });
  const worker: Worker = {
    child,
    received: 0,
    held: 0,
    failed: 0,
    next: () => {
      if (queue.length) return Promise.resolve(queue.shift()!);
      if (gone) return Promise.reject(gone);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
  return worker;
}

/**
 * `n` client processes, killed by `close()` — and by this process exiting on an error or Ctrl-C,
 * since a forked child dies with its IPC channel.
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

/** Shares of `count` over `n` workers, in order: ceil(count / n) each, the rest to the last. */
export function shares(count: number, n: number): number[] {
  const per = Math.ceil(count / n);
  return Array.from({ length: n }, (_, i) => Math.max(0, Math.min(per, count - i * per)));
}

export interface Wave {
  attempted: number;
  connected: number;
  failed: number;
  errors: Record<string, number>;
  /** Connect time of the sockets that connected, µs. */
  hist: Histogram;
  /** The slowest worker's time from its first socket's start to its last one's outcome. */
  seconds: number;
  /** Sockets the server closed since the workers' first open. */
  dropped: number;
}

/** Opens sockets over the workers (`open(i)` is worker i's share) and adds up what they say. */
export async function openWave(workers: Worker[], open: (i: number) => Omit<OpenMessage, 'type'>): Promise<Wave> {
  const opens = workers.map((_, i) => ({ type: 'open' as const, ...open(i) }));
  const replies = await ask(workers, (i) => opens[i]!);
  const wave: Wave = { attempted: 0, connected: 0, failed: 0, errors: {}, hist: newHistogram(), seconds: 0, dropped: 0 };
  replies.forEach((r, i) => {
    wave.attempted += opens[i]!.count;
    wave.connected += r.connected;
    wave.failed += r.failed;
    wave.dropped += r.dropped;
    wave.seconds = Math.max(wave.seconds, r.seconds);
    wave.hist.add(decodeHistogram(r.hist));
    for (const [k, v] of Object.entries(r.errors)) wave.errors[k] = (wave.errors[k] ?? 0) + v;
  });
  return wave;
}

/** Resets every socket of every worker; resolves with how many the server had closed before. */
export async function closeAll(workers: Worker[]): Promise<number> {
  return (await ask(workers, { type: 'close' })).reduce((n, r) => n + r.dropped, 0);
}
