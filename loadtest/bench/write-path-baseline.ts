import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { CLUSTER_SECRET, type ClusterHandle } from '../../scripts/topology/cluster.js';
import { freePort } from '../../scripts/topology/ports.js';
import { runTenant } from '../setup.js';
import { launch, stopper } from './engines.js';
import { seedBoard } from './servers/tutorial-schema.js';
import { type LevelOptions, measureLevel, type WritePathLevel } from './write-path-measure.js';

/**
 * The write path's baseline: servers/tutorial-stack.ts, the server users write by hand, started
 * beside the Fluxo cluster and measured the way Fluxo's one node is — behind its own nginx (the
 * shipped config), on the same Redis and the same Postgres (its own database there), under the
 * same load, with the same checks and the same kinds of process trees counted for CPU.
 */

export const TUTORIAL_ID = 'tutorial-stack';
export const TUTORIAL_LABEL =
  'the Socket.IO + Postgres tutorial server: node:http, postgres.js (default pool), jose per request, one transaction per transition ' +
  '(SELECT … FOR UPDATE, version check, UPDATE, INSERT event), then io.to(room).emit to 3 rooms via @socket.io/redis-adapter (Socket.IO on ws)';

const NODE_ID = 'tutorial-1';
const script = fileURLToPath(new URL('./servers/tutorial-stack.ts', import.meta.url));

export interface BaselineOptions extends LevelOptions {
  processes: number;
  /** Self-check: the server skips the emits of every Nth committed transition (0: none). */
  loseEvery: number;
  /** Passed to the server as NODE_OPTIONS (a CPU profile), when set. */
  nodeOptions?: string;
}

export async function measureTutorialStack(
  cluster: ClusterHandle,
  o: BaselineOptions,
  run: string,
  log: (l: string) => void,
): Promise<WritePathLevel> {
  const redis = cluster.redis;
  if (!redis) throw new Error(`${TUTORIAL_ID}: needs one redis-server (the cluster has a Redis Cluster)`);
  // A database of its own on Fluxo's Postgres: the same server and settings, none of Fluxo's tables.
  const database = `tutorial_${run}`;
  const admin = postgres(cluster.postgres.url, { max: 1, onnotice: () => {} });
  await admin`CREATE DATABASE ${admin(database)}`.finally(() => admin.end({ timeout: 1 }));
  const dbUrl = new URL(cluster.postgres.url);
  dbUrl.pathname = `/${database}`;

  const port = await freePort();
  const env: Record<string, string> = {
    PORT: String(port),
    NODE_ID,
    DATABASE_URL: dbUrl.href,
    REDIS_URL: redis.url,
    JWT_SECRET: CLUSTER_SECRET,
    ...(o.loseEvery > 0 ? { LOSE_EVERY: String(o.loseEvery) } : {}),
    ...(o.nodeOptions ? { NODE_OPTIONS: o.nodeOptions } : {}),
  };
  const child = await launch(script, env, `http://127.0.0.1:${port}/health`);
  try {
    const tenant = runTenant(run, 0);
    return await measureLevel(
      {
        server: TUTORIAL_ID,
        nodes: [{ id: NODE_ID, url: `http://127.0.0.1:${port}`, pid: child.pid! }],
        nginxDir: join(cluster.dir, 'nginx-tutorial'),
        redisPort: redis.port,
        postgresUrl: cluster.postgres.url,
        dbUrl: dbUrl.href,
        tenant,
        seed: (_url, _users, db) => seedBoard(db, tenant, o.processes),
      },
      o,
      log,
    );
  } finally {
    await stopper(child)();
  }
}
