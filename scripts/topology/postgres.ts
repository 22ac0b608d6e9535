import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';
const OS_USER = 'postgres';

export interface PostgresOptions {
  /** A streaming replica (pg_basebackup -R) next to the primary. @default false */
  replica?: boolean;
  /**
   * fsync, synchronous_commit and full_page_writes on, as in production, so a commit that was
   * acknowledged survives a crash (`stopPrimary('immediate')`). Off, a crash may lose the last
   * acknowledged commits: fine for tests that only check logic, and much faster. @default false
   */
  durable?: boolean;
}

/**
 * `fast`: a clean shutdown (clients are disconnected, a checkpoint is written). `immediate`: what a
 * crash looks like — the server processes exit at once and the next start runs crash recovery.
 */
export type StopMode = 'fast' | 'immediate';

export interface PostgresHandle {
  /** postgres://postgres@127.0.0.1:<port>/postgres of the primary. */
  url: string;
  /** Set when started with `{ replica: true }`. */
  replicaUrl?: string;
  /** Stops both servers and removes the data directory. Safe to call twice. */
  stop(): Promise<void>;
  stopReplica(mode?: StopMode): Promise<void>;
  startReplica(): Promise<void>;
  stopPrimary(mode?: StopMode): Promise<void>;
  startPrimary(): Promise<void>;
}

/** Runs a Postgres binary as the `postgres` OS user (Postgres refuses to run as root). */
async function pg(binary: string, args: string[]): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', OS_USER, '--', `${BIN}/${binary}`, ...args]] : [`${BIN}/${binary}`, args];
  try {
    await run(cmd, argv, { timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${binary} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/**
 * A throwaway Postgres 15 on loopback (fsync off unless `durable`), optionally with a streaming
 * replica (pg_basebackup -R). Recipe: /work/shared/ENVIRONMENT.md.
 */
export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresHandle> {
  const durable = opts.durable ?? false;
  if (!existsSync(`${BIN}/initdb`)) {
    throw new Error(`Postgres 15 not found: ${BIN}/initdb is missing (apt-get install -y postgresql-15)`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'fluxo-pg-'));
  if (process.getuid?.() === 0) {
    const { stdout } = await run('id', ['-u', OS_USER]);
    const { stdout: gid } = await run('id', ['-g', OS_USER]);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const primaryDir = join(dir, 'primary');
  const replicaDir = join(dir, 'replica');
  const primaryPort = await freePort();
  const replicaPort = opts.replica ? await freePort() : 0;
  const ctl = (data: string, action: 'start' | 'stop', mode: StopMode = 'fast') =>
    action === 'start'
      ? pg('pg_ctl', ['-D', data, '-l', `${data}.log`, '-w', '-t', '30', 'start'])
      : pg('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);

  let primaryUp = false;
  let replicaUp = false;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (replicaUp) await ctl(replicaDir, 'stop').catch(() => {});
    if (primaryUp) await ctl(primaryDir, 'stop').catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const noSync = durable ? [] : ['--no-sync'];
    await pg('initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', ...noSync, '--no-instructions']);
    await appendFile(
      join(primaryDir, 'postgresql.conf'),
      [
        "listen_addresses='127.0.0.1'",
        `port=${primaryPort}`,
        `unix_socket_directories='${dir}'`,
        'wal_level=replica',
        'max_wal_senders=5',
        'hot_standby=on',
        'max_connections=100',
        ...(durable
          ? ['fsync=on', 'synchronous_commit=on', 'full_page_writes=on']
          : ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off']),
        '',
      ].join('\n'),
    );
    await appendFile(join(primaryDir, 'pg_hba.conf'), 'host replication all 127.0.0.1/32 trust\n');
    await ctl(primaryDir, 'start');
    primaryUp = true;
    if (opts.replica) {
      await pg('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', replicaDir, '-R', '-X', 'stream']);
      // The last setting wins: the copied config still names the primary's port.
      await appendFile(join(replicaDir, 'postgresql.conf'), `port=${replicaPort}\n`);
      await ctl(replicaDir, 'start');
      replicaUp = true;
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const urlOf = (port: number) => `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url: urlOf(primaryPort),
    replicaUrl: opts.replica ? urlOf(replicaPort) : undefined,
    stop,
    stopReplica: async (mode) => {
      if (!opts.replica || !replicaUp) return;
      await ctl(replicaDir, 'stop', mode);
      replicaUp = false;
    },
    startReplica: async () => {
      if (!opts.replica || replicaUp) return;
      await ctl(replicaDir, 'start');
      replicaUp = true;
    },
    stopPrimary: async (mode) => {
      if (!primaryUp) return;
      await ctl(primaryDir, 'stop', mode);
      primaryUp = false;
    },
    startPrimary: async () => {
      if (primaryUp) return;
      await ctl(primaryDir, 'start');
      primaryUp = true;
    },
  };
}
