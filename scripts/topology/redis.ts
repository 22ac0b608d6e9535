import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freeClusterPort, freePort } from './ports.js';

const run = promisify(execFile);
const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? 'redis-server';
const REDIS_CLI = process.env.REDIS_CLI_BIN ?? 'redis-cli';

export interface RedisInstance {
  url: string;
  port: number;
  /** Kills the server; idempotent. */
  stop(): Promise<void>;
  /** Stops it and starts an empty one on the same port (simulates an outage and recovery). */
  restart(): Promise<void>;
  /**
   * Signals the running server: SIGSTOP freezes it (connections stay open, nothing is answered —
   * a Redis that hangs rather than fails), SIGCONT thaws it.
   */
  signal(sig: 'SIGSTOP' | 'SIGCONT'): void;
}

function missingBinary(name: string): Error {
  return new Error(`${name} is not installed or not on PATH; install it with: apt-get install -y redis-server`);
}

/** Spawns redis-server without persistence; rejects if it exits or cannot be spawned. */
async function spawnRedis(port: number, extraArgs: string[] = [], cwd?: string): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(cwd ? { cwd } : {}),
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? missingBinary('redis-server') : err));
    child.once('exit', (code) =>
      reject(new Error(`redis-server on port ${port} exited (${code}) before answering PING: ${stderr.trim()}`)),
    );
  });
  failed.catch(() => {}); // handled below; avoid an unhandled rejection once it is ready
  await Promise.race([waitForPing(port), failed]);
  return child;
}

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ping(port)) return;
    if (Date.now() > deadline) throw new Error(`redis on port ${port} did not answer PING within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends an inline PING over a raw socket (no client library, no reconnect noise). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let data = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString();
      if (data.includes('\r\n')) done(data.startsWith('+PONG'));
    });
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

/** A redis-server process on a fixed port that scenarios can kill, start again and freeze. */
interface Managed {
  stop(): Promise<void>;
  /** kill -9 (if it still runs) and `spawnIt` again on the same port. */
  restart(): Promise<void>;
  signal(sig: 'SIGSTOP' | 'SIGCONT'): void;
}

function managed(first: ChildProcess, spawnIt: () => Promise<ChildProcess>): Managed {
  let child = first;
  return {
    stop: () => kill(child),
    async restart() {
      await kill(child);
      child = await spawnIt();
    },
    signal(sig) {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    },
  };
}

/** Starts a throwaway redis-server on a free loopback port. Call `stop()` in afterAll. */
export async function startRedis(): Promise<RedisInstance> {
  const port = await freePort();
  const server = managed(await spawnRedis(port), () => spawnRedis(port));
  return { url: `redis://127.0.0.1:${port}`, port, stop: server.stop, restart: server.restart, signal: server.signal };
}

/**
 * One master of a RedisCluster, for fault scenarios: `stop` is a kill -9 (nothing saved); `restart`
 * starts it again on its port with its cluster config file (node id, epoch, slots), so it rejoins as
 * the same master, empty, and resolves once every master reports cluster_state:ok; SIGSTOP also
 * stops its cluster gossip.
 */
export interface ClusterMaster extends Omit<RedisInstance, 'url'> {
  host: string;
}

export interface RedisCluster {
  nodes: { host: string; port: number }[];
  /** The masters as created (after a failover one of them may be a replica: see `masterOf`). */
  masters: ClusterMaster[];
  /** The master whose slots hold `key` (a key or a sharded Pub/Sub channel), asked of a running master. */
  masterOf(key: string): Promise<ClusterMaster>;
  /** Resolves once every running server reports cluster_state:ok and `key`'s slots are served by a master other than `not`. */
  waitForFailover(key: string, not: ClusterMaster, timeoutMs?: number): Promise<ClusterMaster>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** @default 3 */
  masters?: number;
  /**
   * Replicas per master. With replicas a master killed for good is replaced by its replica after
   * `nodeTimeoutMs` (Redis' automatic failover), as in a production cluster.
   * @default 0
   */
  replicas?: number;
  /** `cluster-node-timeout`: how long a master may be silent before it counts as failed. @default 15000 (Redis' default) */
  nodeTimeoutMs?: number;
}

/** Starts a Redis Cluster (3 masters by default) on free loopback ports (recipe in /work/shared/ENVIRONMENT.md). */
export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 0;
  const dir = await mkdtemp(join(tmpdir(), 'fluxo-redis-cluster-'));
  const servers: Managed[] = [];
  const ports: number[] = [];
  const stop = async () => {
    // A frozen master dies of SIGKILL all the same.
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  // The config file is written by the master itself (node id, epoch, slots), in `dir`.
  const timeout = opts.nodeTimeoutMs ? ['--cluster-node-timeout', String(opts.nodeTimeoutMs)] : [];
  const spawnMaster = (port: number) =>
    spawnRedis(port, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, ...timeout], dir);
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await freeClusterPort();
      ports.push(port);
      servers.push(managed(await spawnMaster(port), () => spawnMaster(port)));
    }
    const addrs = ports.map((p) => `127.0.0.1:${p}`);
    // redis-cli makes the first `masters` addresses masters and the rest their replicas.
    await run(REDIS_CLI, ['--cluster', 'create', ...addrs, '--cluster-replicas', String(replicas), '--cluster-yes']).catch(
      (err: NodeJS.ErrnoException) => {
        throw err.code === 'ENOENT' ? missingBinary('redis-cli') : err;
      },
    );
    await Promise.all(ports.map((p) => waitForClusterOk(p)));
  } catch (err) {
    await stop();
    throw err;
  }
  const all: ClusterMaster[] = ports.map((port, i) => {
    const server = servers[i]!;
    return {
      host: '127.0.0.1',
      port,
      stop: server.stop,
      async restart() {
        await server.restart();
        await Promise.all(ports.map((p) => waitForClusterOk(p)));
      },
      signal: server.signal,
    };
  });
  const masterOf = async (key: string) => {
    const port = await ownerOf(ports, key);
    return all.find((m) => m.port === port)!;
  };
  return {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    masters: all.slice(0, masters),
    masterOf,
    async waitForFailover(key, not, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const owner = await masterOf(key).catch(() => null);
        if (owner && owner.port !== not.port) {
          const running = ports.filter((p) => p !== not.port);
          await Promise.all(running.map((p) => waitForClusterOk(p, Math.max(1000, deadline - Date.now()))));
          return owner;
        }
        if (Date.now() > deadline) throw new Error(`no replica took over ${key} from :${not.port} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop,
  };
}

/** The port of the master serving `key`'s slot, from CLUSTER KEYSLOT and CLUSTER NODES of the first master that answers. */
async function ownerOf(ports: number[], key: string): Promise<number> {
  for (const port of ports) {
    const cli = (...args: string[]) => run(REDIS_CLI, ['-p', String(port), ...args], { timeout: 2000 }).then((r) => r.stdout);
    try {
      const slot = Number((await cli('cluster', 'keyslot', key)).trim());
      // `CLUSTER NODES` lines: id host:port@bus flags master ping pong epoch link slot-ranges…
      for (const line of (await cli('cluster', 'nodes')).split('\n')) {
        const f = line.trim().split(' ');
        if (!f[2]?.includes('master')) continue;
        const owns = f.slice(8).some((range) => {
          const [from, to = from] = range.split('-').map(Number);
          return slot >= from! && slot <= to!;
        });
        if (owns) return Number(f[1]!.split(':')[1]!.split('@')[0]);
      }
    } catch {
      // Frozen or down: ask the next one.
    }
  }
  throw new Error(`no master of the cluster ${ports.join(', ')} says which one owns ${key}`);
}

async function waitForClusterOk(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Bounded: a frozen master would hold the call forever.
    const { stdout } = await run(REDIS_CLI, ['-p', String(port), 'cluster', 'info'], { timeout: 2000 }).catch(() => ({ stdout: '' }));
    if (stdout.includes('cluster_state:ok')) return;
    if (Date.now() > deadline) throw new Error(`redis cluster node ${port} not ok within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
