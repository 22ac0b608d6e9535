import { nodeBehind, sourceAddress } from '../scripts/topology/source-address.js';
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

/**
 * A gauge of the server's /metrics (Prometheus text), or null when it is not exposed or the server
 * does not answer within `timeoutMs` (an overloaded node must not stall a run).
 */
export async function serverMetric(base: string, name: string, timeoutMs = 10_000): Promise<number | null> {
  try {
    const res = await fetch(new URL('/metrics', base), { signal: AbortSignal.timeout(timeoutMs) });
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)`, 'm').exec(await res.text());
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** `count` loopback source addresses in distinct /24s (127.0.1.1, 127.0.2.1, …) for nginx `ip_hash`. */
export function sourceAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => sourceAddress((i % 254) + 1));
}

/**
 * Source addresses in distinct /24s, the same number behind each node, so that connections spread
 * evenly however ip_hash happens to map them. Probes `candidates` until each node has `perNode`.
 */
export async function balancedAddresses(
  url: string,
  nodeIds: string[],
  perNode: number,
  candidates = sourceAddresses(254),
): Promise<Map<string, string[]>> {
  const byNode = new Map<string, string[]>(nodeIds.map((n) => [n, []]));
  for (const addr of candidates) {
    const list = byNode.get(await nodeBehind(url, addr));
    if (list && list.length < perNode) list.push(addr);
    if ([...byNode.values()].every((l) => l.length >= perNode)) return byNode;
  }
  throw new Error(
    `ip_hash: could not find ${perNode} source addresses per node over ${candidates.length} /24s: ${JSON.stringify([...byNode])}`,
  );
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
