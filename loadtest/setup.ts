import { DEV_JWT_SECRET } from '../server/auth/dev-secret.js';
import { mintToken } from '../server/auth/mint.js';
import type { Process, Role, Workflow } from '../shared/protocol.js';

/**
 * What every scenario needs against a live Fluxo: tokens, a small fetch wrapper, and its own
 * workflow/processes in a tenant of its own (so a run never touches real data and the ids of a
 * tenant's events are the run's alone).
 */

/** HS256 secret: `--secret`, else JWT_SECRET, else the public development secret of `npm start`. */
export function resolveSecret(flag?: string): string {
  return flag ?? process.env.JWT_SECRET ?? DEV_JWT_SECRET;
}

export function mint(secret: string, sub: string, tid: string, role: Role = 'editor', ttlS = 3600): Promise<string> {
  return mintToken({ sub, tid, role, ttlS, secret });
}

/** A tenant id unique to this run, e.g. `lt-m3k9x2-0`. */
export function runTenant(run: string, index: number): string {
  return `lt-${run}-${index}`;
}

export function newRunId(): string {
  return Date.now().toString(36).slice(-6) + Math.floor(Math.random() * 36 ** 2).toString(36);
}

export interface ApiResult<T> {
  status: number;
  body: T;
}

export async function call<T = unknown>(
  base: string,
  method: string,
  path: string,
  bearer?: string,
  body?: unknown,
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = {};
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(new URL(path, base), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed as T };
}

async function must<T>(p: Promise<ApiResult<{ data: T }>>, what: string): Promise<T> {
  const res = await p;
  if (res.status >= 300) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return res.body.data;
}

/** Stages todo ⇄ doing, so a process can be transitioned forever. */
export const LOAD_BOARD = { name: 'loadtest', stages: ['todo', 'doing'], transitions: { todo: ['doing'], doing: ['todo'] } };

export function createWorkflow(base: string, adminToken: string): Promise<Workflow> {
  return must(call(base, 'POST', '/api/workflows', adminToken, LOAD_BOARD), 'create workflow');
}

export function createProcess(base: string, token: string, workflowId: string, title: string): Promise<Process> {
  return must(call(base, 'POST', '/api/processes', token, { workflowId, title }), 'create process');
}

/** The stage to move to next on the load board. */
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

/** Loopback source addresses in distinct /24s (127.0.1.1, 127.0.2.1, …) for nginx `ip_hash`. */
export function sourceAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `127.0.${(i % 254) + 1}.1`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
