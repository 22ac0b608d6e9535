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

/** Starts a throwaway redis-server on a free loopback port. Call `stop()` in afterAll. */
export async function startRedis(): Promise<RedisInstance> {
  const port = await freePort();
  let child = await spawnRedis(port);
  const instance: RedisInstance = {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => kill(child),
    async restart() {
      await kill(child);
      child = await spawnRedis(port);
    },
    signal(sig) {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    },
  };
  return instance;
}

export interface RedisCluster {
  nodes: { host: string; port: number }[];
  stop(): Promise<void>;
}

/** Starts a 3-master Redis Cluster on free loopback ports (recipe in /work/shared/ENVIRONMENT.md). */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'fluxo-redis-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(children.map(kill));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freeClusterPort();
      ports.push(port);
      children.push(await spawnRedis(port, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`], dir));
    }
    const addrs = ports.map((p) => `127.0.0.1:${p}`);
    await run(REDIS_CLI, ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes']).catch(
      (err: NodeJS.ErrnoException) => {
        throw err.code === 'ENOENT' ? missingBinary('redis-cli') : err;
      },
    );
    await Promise.all(ports.map((p) => waitForClusterOk(p)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), stop };
}

async function waitForClusterOk(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { stdout } = await run(REDIS_CLI, ['-p', String(port), 'cluster', 'info']);
    if (stdout.includes('cluster_state:ok')) return;
    if (Date.now() > deadline) throw new Error(`redis cluster node ${port} not ok within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
