import { execSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import postgres from 'postgres';

interface ProcStat {
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
}

let clockTicks: number | null = null;
function ticksPerSecond(): number {
  clockTicks ??= Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
  return clockTicks;
}

/** Fields of /proc/<pid>/stat after the command name, which may hold spaces and parentheses. */
function statFields(pid: number): string[] {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // f[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** utime + stime of one process (its reaped children not included), in µs. */
export function cpuMicros(pid: number): number {
  const f = statFields(pid);
  return ((Number(f[11]) + Number(f[12])) * 1e6) / ticksPerSecond();
}

function readAll(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    let f: string[];
    try {
      f = statFields(pid);
    } catch {
      continue; // gone between readdir and read
    }
    out.set(pid, { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
  }
  return out;
}

/**
 * CPU time in µs of each named process tree (a root and every descendant), from /proc. Children's
 * cutime/cstime count too, so a Postgres backend or an nginx worker that exited and was reaped by
 * a process of the tree still counts — the sum only grows.
 */
export function treeCpuMicros(roots: Record<string, number>): Record<string, number> {
  const all = readAll();
  const children = new Map<number, number[]>();
  for (const [pid, s] of all) {
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  const perTick = 1e6 / ticksPerSecond();
  const out: Record<string, number> = {};
  for (const [name, root] of Object.entries(roots)) {
    let ticks = 0;
    const stack = [root];
    while (stack.length) {
      const pid = stack.pop()!;
      ticks += all.get(pid)?.ticks ?? 0;
      stack.push(...(children.get(pid) ?? []));
    }
    out[name] = ticks * perTick;
  }
  return out;
}

/** CPU µs of one process tree (see treeCpuMicros), e.g. every process of a Postgres data directory. */
export const treeCpuOf = (root: number): number => treeCpuMicros({ root }).root!;

/** CPU µs spent over `seconds` of wall time, in % of one core. */
export const percentOfCore = (us: number, seconds: number): number => Math.round((us / (Math.max(0.001, seconds) * 1e6)) * 100);

/** Per-tree difference b − a. */
export function cpuDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));
}

/** One INFO section of the redis-server on `port`. */
async function redisInfo(port: number, section: string): Promise<string> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    return await r.info(section);
  } finally {
    r.disconnect();
  }
}

/** The pid of the redis-server on `port`, from its INFO: whose CPU counts as Redis's. */
export async function redisPid(port: number): Promise<number> {
  const m = /process_id:(\d+)/.exec(await redisInfo(port, 'server'));
  if (!m) throw new Error(`redis on ${port}: no process_id in INFO`);
  return Number(m[1]);
}

/**
 * PUBLISH + SPUBLISH calls the redis-server on `port` has served (INFO commandstats): the Socket.IO
 * Redis adapters' messages, classic and sharded. A command never called has no line: 0.
 */
export async function redisPublishCalls(port: number): Promise<number> {
  const info = await redisInfo(port, 'commandstats');
  const calls = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return calls('publish') + calls('spublish');
}

/** The postmaster's pid — a backend's parent — so that every process of the server is one tree. */
export async function postmasterPid(url: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [backend] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
    return Number(statFields(backend!.pid)[1]);
  } finally {
    await sql.end();
  }
}
