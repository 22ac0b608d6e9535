import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../setup.js';
import { median } from './suite.js';

/**
 * Server memory as the `connections` suite reads it. RSS right after start-up is no baseline: tsx,
 * the embedded database and the JIT release and grow memory for seconds, and a young-generation
 * heap full of handshake garbage is not what a socket keeps. So the server runs with a GC hook,
 * RSS is read after forced collections at several socket counts, and a socket's share is the
 * slope over those points.
 */

/** Where the GC hook of a server process leaves `process.memoryUsage()` after collecting. */
export function memoryFile(pid: number): string {
  return join(tmpdir(), `fluxo-bench-mem-${pid}.json`);
}

/**
 * Runs in the server under test (through NODE_OPTIONS, so the engines' own code stays untouched):
 * on SIGUSR2, two full collections — the second reclaims what the first one's finalisers released
 * — then `process.memoryUsage()` to memoryFile(pid), which splits RSS into V8 heap and the rest.
 * No engine uses SIGUSR2.
 */
const HOOK = `process.on('SIGUSR2',()=>{globalThis.gc();globalThis.gc();import('node:fs').then((fs)=>fs.writeFileSync(${JSON.stringify(
  join(tmpdir(), 'fluxo-bench-mem-'),
)}+process.pid+'.json',JSON.stringify(process.memoryUsage())))})`;

/** NODE_OPTIONS for a server under test: `--expose-gc` and the hook, URL-encoded (NODE_OPTIONS splits on spaces). */
export const GC_HOOK_NODE_OPTIONS = `--expose-gc --import=data:text/javascript,${encodeURIComponent(HOOK)}`;

/** Resident set size of a process in bytes, from /proc/<pid>/status (VmRSS, in kB). */
export function vmRssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

export interface RssSample {
  /** Median of the VmRSS readings. */
  bytes: number;
  /** max − min of the readings: how noisy this one was. */
  spreadBytes: number;
  /** V8 heap in use after the collections (what JS objects hold); null if the hook did not answer. */
  heapUsedBytes: number | null;
}

/** Triggers the hook's collections, waits for V8 to return freed pages, then takes `samples` readings. */
export async function settledRss(pid: number, opts: { samples?: number; pauseMs?: number } = {}): Promise<RssSample> {
  const file = memoryFile(pid);
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  await sleep(opts.pauseMs ?? 600);
  const xs: number[] = [];
  for (let i = 0; i < (opts.samples ?? 5); i++) {
    xs.push(vmRssBytes(pid));
    await sleep(150);
  }
  let mem: { heapUsed: number } | null = null;
  try {
    mem = JSON.parse(readFileSync(file, 'utf8')) as { heapUsed: number };
    rmSync(file, { force: true });
  } catch {}
  return {
    bytes: median(xs),
    spreadBytes: Math.max(...xs) - Math.min(...xs),
    heapUsedBytes: mem?.heapUsed ?? null,
  };
}

export interface RssPoint {
  sockets: number;
  rssBytes: number;
}

/**
 * Bytes per socket: the least-squares slope of RSS over socket count. Null with fewer than two
 * distinct counts, where no slope exists.
 */
export function bytesPerSocket(points: readonly RssPoint[]): number | null {
  const n = points.length;
  if (n < 2) return null;
  const mx = points.reduce((s, p) => s + p.sockets, 0) / n;
  const my = points.reduce((s, p) => s + p.rssBytes, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.sockets - mx) ** 2;
    sxy += (p.sockets - mx) * (p.rssBytes - my);
  }
  return sxx === 0 ? null : sxy / sxx;
}
