import { sourceAddress } from '../scripts/topology/source-address.js';
import { DEV_JWT_SECRET } from '../server/auth/dev-secret.js';

/**
 * What every run needs beside the fixtures it shares with the tests (scripts/topology: tokens,
 * workflows, processes): its own tenant, so that a run never touches real data and the ids of a tenant's
 * events are the run's alone.
 */

/** HS256 secret: `--secret`, else JWT_SECRET, else the public development secret of `npm start`. */
export function resolveSecret(flag?: string): string {
  return flag ?? process.env.JWT_SECRET ?? DEV_JWT_SECRET;
}

/** A tenant id unique to this run, e.g. `lt-m3k9x2-0`. */
export function runTenant(run: string, index: number): string {
  return `lt-${run}-${index}`;
}

export function newRunId(): string {
  return Date.now().toString(36).slice(-6) + Math.floor(Math.random() * 36 ** 2).toString(36);
}

/** The stage to move to next: todo ⇄ doing, which the fixtures' board allows forever. */
export function nextStage(stage: string): string {
  return stage === 'todo' ? 'doing' : 'todo';
}

/** Server resident set size from Prometheus text, or null when /metrics does not expose it. */
export async function serverRss(base: string): Promise<number | null> {
  try {
    const res = await fetch(new URL('/metrics', base));
    const m = /^process_resident_memory_bytes(?:\{[^}]*\})? ([0-9.e+]+)/m.exec(await res.text());
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** `count` loopback source addresses in distinct /24s (127.0.1.1, 127.0.2.1, …) for nginx `ip_hash`. */
export function sourceAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => sourceAddress((i % 254) + 1));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
