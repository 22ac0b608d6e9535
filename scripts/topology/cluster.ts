import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { type PostgresHandle, startPostgres } from './postgres.js';
import { type RedisCluster, type RedisClusterOptions, type RedisInstance, startRedis, startRedisCluster } from './redis.js';
import { TEST_SECRET } from './tokens.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
/** The JWT secret of spawned nodes unless `env` sets one: the one `token()` signs with by default. */
export const CLUSTER_SECRET = TEST_SECRET;

export interface SpawnedNode {
  nodeId: string;
  port: number;
  url: string;
  log: string;
  proc: ChildProcess;
  /** SIGKILL: no drain, no cleanup (what a crash looks like to the others). */
  kill9(): Promise<void>;
  /** SIGTERM and wait for exit (graceful drain). */
  stop(): Promise<void>;
}

/**
 * Spawns `node --import tsx server/main.ts` on a free loopback port with `env` and waits for
 * /ready. Logs go to `logFile`. A real process, so tests can kill -9 it.
 */
export async function spawnNode(env: Record<string, string>, logFile: string, readyTimeoutMs = 90_000): Promise<SpawnedNode> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const nodeId = env.NODE_ID ?? `node-${port}`;
  const out = createWriteStream(logFile, { flags: 'a' });
  const proc = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      JWT_SECRET: CLUSTER_SECRET,
      SHUTDOWN_GRACE_MS: '2000',
      ...env,
      PORT: String(port),
      NODE_ID: nodeId,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.pipe(out);
  proc.stderr?.pipe(out);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (gone()) throw new Error(`fluxo node ${nodeId} exited (${proc.exitCode ?? proc.signalCode}) before ready; log: ${logFile}`);
    const ok = await fetch(`${url}/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`fluxo node ${nodeId} not ready within ${readyTimeoutMs} ms; log: ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  const signal = async (sig: NodeJS.Signals) => {
    if (gone()) return;
    proc.kill(sig);
    await exited;
  };
  return { nodeId, port, url, log: logFile, proc, kill9: () => signal('SIGKILL'), stop: () => signal('SIGTERM') };
}

/**
 * nginx in front of the nodes, on loopback: nginx/nginx.conf as shipped (what compose.yaml runs),
 * with the upstreams, the listen address and the temp paths swapped in — so the tests and benches
 * exercise the production proxy rules, not a copy of them.
 * `refuseWebSocket`: answer every WebSocket upgrade 403, as a proxy that cannot carry WebSocket does
 * (clients must fall back to long-polling).
 */
export function nginxConfig(opts: { dir: string; port: number; upstreams: string[]; refuseWebSocket?: boolean }): string {
  const d = opts.dir;
  const shipped = readFileSync(join(ROOT, 'nginx/nginx.conf'), 'utf8');
  const upstream = /^(\s*)server fluxo-1:8080( [^;\n]*)?;$/m.exec(shipped);
  if (!upstream || !/listen 80;/.test(shipped)) throw new Error('nginx/nginx.conf: no `server fluxo-1:8080 …;` or `listen 80;` to replace');
  const [, indent, params = ''] = upstream;
  if (opts.refuseWebSocket && !/server_tokens off;/.test(shipped))
    throw new Error('nginx/nginx.conf: no `server_tokens off;` to add the WebSocket refusal after');
  // Started as root, nginx runs its workers as `nobody`, who cannot reach the client-body temp
  // directory inside the cluster's 0700 mkdtemp directory: every body over 16 KB (buffered to a temp
  // file) would answer 500. So its workers stay root (loopback only; `user` needs a root master).
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}daemon off;\npid ${d}/nginx.pid;\nerror_log ${d}/error.log warn;\n${shipped}`
    .replace(/^\s*server fluxo-[2-9]:8080[^\n]*\n/gm, '')
    .replace(upstream[0], opts.upstreams.map((u) => `${indent}server ${u}${params};`).join('\n'))
    .replace(/listen 80;/, `listen 127.0.0.1:${opts.port};`)
    .replace(
      /server_tokens off;/,
      opts.refuseWebSocket ? 'server_tokens off;\n    if ($http_upgrade) { return 403; }' : 'server_tokens off;',
    )
    .replace(/worker_processes auto;/, 'worker_processes 1;')
    .replace(/worker_connections \d+;/, 'worker_connections 4096;')
    .replace(
      /^http \{/m,
      `http {\n  access_log ${d}/access.log;\n${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${d}/${t};`).join('\n')}`,
    );
}

export interface NginxHandle {
  url: string;
  port: number;
  /** The master's (its workers are its children). */
  pid: number;
  log: string;
  stop(): Promise<void>;
}

export async function startNginx(
  dir: string,
  upstreams: string[],
  fixedPort?: number,
  /** `edit`: changes to the config beyond the harness's (the scale bench's worker sizing). */
  opts: { refuseWebSocket?: boolean; edit?: (conf: string) => string } = {},
): Promise<NginxHandle> {
  const bin = process.env.NGINX_BIN ?? 'nginx';
  await mkdir(dir, { recursive: true });
  if (fixedPort !== undefined && !(await portIsFree(fixedPort)))
    throw new Error(`port ${fixedPort} is already in use (choose another with --port)`);
  const port = fixedPort ?? (await freePort());
  const conf = join(dir, 'nginx.conf');
  const harness = nginxConfig({ dir, port, upstreams, refuseWebSocket: opts.refuseWebSocket ?? false });
  await writeFile(conf, opts.edit ? opts.edit(harness) : harness);
  const proc = spawn(bin, ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const failed = new Promise<never>((_, reject) => {
    proc.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT' ? new Error('nginx is not installed or not on PATH; install it with: apt-get install -y nginx-light') : err,
      ),
    );
    proc.once('exit', (code) => reject(new Error(`nginx exited (${code}): ${stderr.trim()}`)));
  });
  failed.catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  const up = (async () => {
    for (let i = 0; i < 200; i++) {
      const ok = await fetch(`${url}/health`).then(
        () => true,
        () => false,
      );
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nginx did not answer on ${url}`);
  })();
  await Promise.race([up, failed]);
  // Something else could have answered on the port while nginx failed to bind: make sure it lives.
  await new Promise((r) => setTimeout(r, 200));
  if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`nginx exited: ${stderr.trim()}`);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    url,
    port,
    pid: proc.pid!,
    log: join(dir, 'error.log'),
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGQUIT');
      // A graceful quit closes every proxied socket first: at 100,000 of them that takes seconds.
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
}

export interface ClusterOptions {
  nodes: number;
  /** A Redis Cluster (sharded adapter; 3 masters, no replicas unless said) instead of one redis-server. */
  redisCluster?: boolean | RedisClusterOptions;
  /** nginx (ip_hash) in front of the nodes. */
  nginx?: boolean;
  /** A streaming replica next to the Postgres primary. */
  replica?: boolean;
  /** Postgres with fsync and synchronous_commit on (see PostgresOptions.durable). @default false */
  durable?: boolean;
  /** Extra env for every node (e.g. PRESENCE_TTL_MS). */
  env?: Record<string, string>;
  /** Keep the temp dir (logs) after stop. */
  keep?: boolean;
  /** nginx's port; default a free one. */
  nginxPort?: number;
  /** nginx answers every WebSocket upgrade 403 (a proxy without WebSocket): clients must long-poll. */
  nginxRefusesWebSocket?: boolean;
  /** Stop nodes with SIGTERM (drain) instead of SIGKILL. */
  graceful?: boolean;
  /** Called as each part comes up (the cluster script prints it). */
  onProgress?: (what: string) => void;
}

export interface ClusterHandle {
  dir: string;
  nodes: SpawnedNode[];
  redis: RedisInstance | null;
  redisCluster: RedisCluster | null;
  postgres: PostgresHandle;
  nginx: NginxHandle | null;
  /** The env every node got (add a node later with `addNode`). */
  env: Record<string, string>;
  addNode(index: number): Promise<SpawnedNode>;
  /**
   * Starts node-`index` again, with its id and port (so nginx's upstream finds it), after it was
   * killed or stopped; it replaces the old process in `nodes`.
   */
  restartNode(index: number): Promise<SpawnedNode>;
  stop(): Promise<void>;
}

/**
 * The whole topology on loopback, with real processes: Redis (or a Redis Cluster), Postgres
 * primary (+ replica), migrations, N Fluxo nodes, nginx. Everything started is stopped by `stop()`,
 * also when start-up fails half way.
 */
export async function startCluster(opts: ClusterOptions): Promise<ClusterHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'fluxo-cluster-'));
  const stoppers: (() => Promise<void>)[] = [];
  const progress = opts.onProgress ?? (() => {});
  let stopping: Promise<void> | null = null;
  const stopAll = () => {
    stopping ??= (async () => {
      for (const s of [...stoppers].reverse()) await s().catch(() => {});
      if (!opts.keep) await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  try {
    let redis: RedisInstance | null = null;
    let redisCluster: RedisCluster | null = null;
    const env: Record<string, string> = { ...opts.env };
    if (opts.redisCluster) {
      redisCluster = await startRedisCluster(opts.redisCluster === true ? {} : opts.redisCluster);
      stoppers.push(() => (redisCluster as RedisCluster).stop());
      env.REDIS_CLUSTER_NODES = redisCluster.nodes.map((n) => `${n.host}:${n.port}`).join(',');
    } else {
      redis = await startRedis();
      stoppers.push(() => (redis as RedisInstance).stop());
      env.REDIS_URL = redis.url;
    }
    progress(redisCluster ? `redis cluster ${env.REDIS_CLUSTER_NODES}` : `redis ${env.REDIS_URL}`);
    const postgres = await startPostgres({ replica: opts.replica ?? false, durable: opts.durable ?? false });
    stoppers.push(() => postgres.stop());
    env.DATABASE_URL = postgres.url;
    if (postgres.replicaUrl) env.DATABASE_REPLICA_URLS = postgres.replicaUrl;
    progress(`postgres primary ${postgres.url}${postgres.replicaUrl ? `, replica ${postgres.replicaUrl}` : ''}`);
    await run(process.execPath, ['--import', 'tsx', 'scripts/migrate.ts'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: postgres.url },
    });

    const nodes: SpawnedNode[] = [];
    const addNode = async (i: number, port?: number) => {
      const node = await spawnNode({ ...env, NODE_ID: `node-${i}`, ...(port ? { PORT: String(port) } : {}) }, join(dir, `node-${i}.log`));
      stoppers.push(() => (opts.graceful ? stopWithin(node, 5000) : node.kill9()));
      return node;
    };
    const restartNode = async (i: number) => {
      const old = nodes[i - 1];
      if (!old) throw new Error(`no node-${i} to restart`);
      if (old.proc.exitCode === null && old.proc.signalCode === null) throw new Error(`node-${i} is still running`);
      const node = await addNode(i, old.port);
      nodes[i - 1] = node;
      return node;
    };
    // One at a time: each start compiles TypeScript, and the 2-core machine runs them in parallel badly.
    progress('migrations applied');
    for (let i = 1; i <= opts.nodes; i++) {
      const node = await addNode(i);
      nodes.push(node);
      progress(`${node.nodeId} ${node.url} (log ${node.log})`);
    }

    let nginx: NginxHandle | null = null;
    if (opts.nginx) {
      nginx = await startNginx(
        join(dir, 'nginx'),
        nodes.map((n) => `127.0.0.1:${n.port}`),
        opts.nginxPort,
        { refuseWebSocket: opts.nginxRefusesWebSocket ?? false },
      );
      stoppers.push(() => (nginx as NginxHandle).stop());
      progress(`nginx ${nginx.url} (ip_hash over ${nodes.length} nodes; log ${nginx.log})`);
    }
    return { dir, nodes, redis, redisCluster, postgres, nginx, env, addNode: (i) => addNode(i), restartNode, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Fails with the binary's name when something the cluster needs is missing (tests must not skip silently). */
export function requireBinaries(): void {
  const missing: string[] = [];
  const onPath = (b: string) => (process.env.PATH ?? '').split(':').some((p) => existsSync(join(p, b)));
  for (const b of ['redis-server', 'redis-cli', 'nginx']) if (!onPath(b)) missing.push(b);
  if (!existsSync('/usr/lib/postgresql/15/bin/initdb')) missing.push('/usr/lib/postgresql/15/bin/initdb (postgresql-15)');
  if (missing.length) throw new Error(`missing binaries for cluster tests: ${missing.join(', ')} — run scripts/install-system-deps.sh`);
}

async function stopWithin(node: SpawnedNode, ms: number): Promise<void> {
  const timer = setTimeout(() => void node.kill9(), ms);
  try {
    await node.stop();
  } finally {
    clearTimeout(timer);
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve(true)));
  });
}

/** The first two nodes of a cluster, or a clear failure. */
export function firstTwo(cluster: ClusterHandle): readonly [SpawnedNode, SpawnedNode] {
  const [n1, n2] = cluster.nodes;
  if (!n1 || !n2) throw new Error('cluster has fewer than two nodes');
  return [n1, n2] as const;
}
