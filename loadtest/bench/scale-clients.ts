import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tsxImport } from '../clients.js';
import type { FromScaleWorker, ScaleCount, ToScaleWorker } from './scale-worker.js';

/** The parent side of scale-worker.ts: the client processes, asked all at once. */
export interface ScaleWorker {
  child: ChildProcess;
  /** The latest unsolicited count. */
  count: ScaleCount;
  next(): Promise<FromScaleWorker>;
}

function spawnOne(): ScaleWorker {
  const child = fork(fileURLToPath(new URL('./scale-worker.ts', import.meta.url)), [], {
    // Sockets need memory, not files only: 12,500 lean sockets with their id sets stay well under this.
    execArgv: ['--import', tsxImport(), '--max-old-space-size=2048'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const queue: FromScaleWorker[] = [];
  const waiting: { resolve(m: FromScaleWorker): void; reject(err: Error): void }[] = [];
  let gone: Error | null = null;
  child.once('exit', (code, signal) => {
    gone = new Error(`scale client ${child.pid} exited (${code ?? signal})`);
    for (const w of waiting.splice(0)) w.reject(gone);
  });
  child.on('error', (err) => process.stderr.write(`scale client ${child.pid}: ${err.message}\n`));
  const worker: ScaleWorker = {
    child,
    count: { type: 'count', held: 0, inRoom: 0, failed: 0, dropped: 0, events: 0, presence: 0, presenceBytes: 0 },
    next: () => {
      if (queue.length) return Promise.resolve(queue.shift()!);
      if (gone) return Promise.reject(gone);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
  child.on('message', (m: FromScaleWorker) => {
    if (m.type === 'count') {
      worker.count = m;
      return;
    }
    const w = waiting.shift();
    if (w) w.resolve(m);
    else queue.push(m);
  });
  return worker;
}

/** `n` client processes; `close()` kills them (and they exit with this process's IPC channel). */
export function spawnScaleWorkers(n: number): { workers: ScaleWorker[]; close(): void } {
  const workers = Array.from({ length: n }, spawnOne);
  return {
    workers,
    close: () => {
      for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    },
  };
}

type Reply<T extends ToScaleWorker['type']> = Extract<
  FromScaleWorker,
  { type: { open: 'opened'; mark: 'mark'; verify: 'verified'; close: 'closed' }[T] }
>;

/** Sends each worker its message and resolves with every answer, in worker order. */
export async function askAll<M extends ToScaleWorker>(workers: ScaleWorker[], msg: (i: number) => M): Promise<Reply<M['type']>[]> {
  for (const [i, w] of workers.entries()) if (w.child.connected) w.child.send(msg(i));
  const replies = await Promise.all(workers.map((w) => w.next()));
  return replies as Reply<M['type']>[];
}

/** The workers' latest counts added up. */
export function totals(workers: ScaleWorker[]): Omit<ScaleCount, 'type'> {
  const t = { held: 0, inRoom: 0, failed: 0, dropped: 0, events: 0, presence: 0, presenceBytes: 0 };
  for (const w of workers) for (const k of Object.keys(t) as (keyof typeof t)[]) t[k] += w.count[k];
  return t;
}
