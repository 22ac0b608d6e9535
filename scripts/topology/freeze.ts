import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import postgres from 'postgres';

const run = promisify(execFile);

/**
 * A server frozen with SIGSTOP: its connections stay open and nothing is answered — what a hung
 * host, a long GC or a stalled VM looks like to its clients, unlike a crash (connections refused).
 */
export interface Frozen {
  /** SIGCONT to every process that was stopped. Safe to call twice. */
  thaw(): void;
}

/** A process that exited meanwhile (ESRCH) is skipped. */
function signal(pid: number, sig: 'SIGSTOP' | 'SIGCONT'): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function stop(pids: number[]): Frozen {
  for (const pid of pids) signal(pid, 'SIGSTOP');
  let thawed = false;
  return {
    thaw() {
      if (thawed) return;
      thawed = true;
      for (const pid of pids) signal(pid, 'SIGCONT');
    },
  };
}

/** The postmaster of the Postgres server at `url` and all its children (backends, walsender, …). */
export async function postgresPids(url: string): Promise<number[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  let dir: string;
  try {
    const [row] = await sql<{ dir: string }[]>`SELECT current_setting('data_directory') AS dir`;
    dir = row!.dir;
  } finally {
    // Before listing the children: this connection's backend is one of them until it ends.
    await sql.end();
  }
  const postmaster = Number((await readFile(`${dir}/postmaster.pid`, 'utf8')).split('\n')[0]);
  const { stdout } = await run('pgrep', ['-P', String(postmaster)]).catch(() => ({ stdout: '' }));
  return [postmaster, ...stdout.split('\n').filter(Boolean).map(Number)];
}

/** Freezes the whole Postgres server at `url` (postmaster first, so that it forks nothing new). */
export async function freezePostgres(url: string): Promise<Frozen> {
  return stop(await postgresPids(url));
}

/** Freezes the redis-server at `url`. */
export async function freezeRedis(url: string): Promise<Frozen> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    const info = await client.info('server');
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error('redis INFO has no process_id');
    return stop([pid]);
  } finally {
    client.disconnect();
  }
}
