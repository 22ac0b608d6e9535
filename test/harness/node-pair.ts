import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SpawnedNode, spawnNode } from '../../scripts/topology/cluster.js';
import { type RedisInstance, startRedis } from '../../scripts/topology/redis.js';
import { token } from '../../scripts/topology/tokens.js';
import { type Client, client } from './node.js';

const READY_TIMEOUT_MS = 60_000;
/** What a test's beforeAll gives `startNodePair`: the nodes' start and Redis's. */
export const NODE_PAIR_START_MS = READY_TIMEOUT_MS + 30_000;

export interface NodePair {
  a: SpawnedNode;
  b: SpawnedNode;
  /** A socket of user `sub` of `tenant` on `node`; closed by `stop`. */
  connect(node: SpawnedNode, tenant: string, sub: string): Promise<Client>;
  /** Closes the sockets, stops both nodes and Redis, removes the logs. */
  stop(): Promise<void>;
}

/**
 * Two real node processes, `node-a` and `node-b`, sharing one Redis, each with its own PGlite (so
 * only rooms that need no row — `tenant`, `user:<id>` — are common to both), with generous
 * handshake and subscribe budgets; `env` adds to their environment. Real processes: two
 * Socket.IO-on-uWS servers in one process share Socket.IO's patched adapter prototype, which
 * publishes through the last uWS app attached (socket.io's uws.ts).
 */
export async function startNodePair(name: string, env: Record<string, string> = {}): Promise<NodePair> {
  const redis: RedisInstance = await startRedis();
  const logs = await mkdtemp(join(tmpdir(), `fluxo-${name}-`));
  const sockets: Client[] = [];
  const base = { REDIS_URL: redis.url, RATE_LIMITS: 'handshake=1000/1,subscribe=1000/1', LOG_LEVEL: 'warn', ...env };
  // Two cold starts at once (tsx compiling the server) on a loaded 2-core machine took over 30 s.
  const started = await Promise.allSettled(
    ['node-a', 'node-b'].map((id) => spawnNode({ ...base, NODE_ID: id }, join(logs, `${id}.log`), READY_TIMEOUT_MS)),
  );
  const nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stop = async (keepLogs = false) => {
    for (const s of sockets) s.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await redis.stop();
    if (!keepLogs) await rm(logs, { recursive: true, force: true });
  };
  const [a, b] = nodes;
  if (!a || !b) {
    await stop(true); // the error names a log
    throw started.find((s) => s.status === 'rejected')?.reason;
  }
  return {
    a,
    b,
    async connect(node, tenant, sub) {
      const socket = await client(node.url, { token: await token({ sub, tid: tenant }) });
      sockets.push(socket);
      return socket;
    },
    stop: () => stop(),
  };
}
