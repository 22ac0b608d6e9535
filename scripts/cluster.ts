/**
 * `npm run cluster -- --nodes 3 [--redis-cluster] [--keep] [--port 8080] [--fast]`
 * The production topology on loopback, without Docker: redis-server (or a 3-master Redis Cluster),
 * a Postgres 15 primary and a streaming replica, migrations, N Fluxo nodes and nginx (ip_hash) in
 * front. Postgres is durable (fsync and synchronous_commit on) as in production, so crashing it by
 * hand loses no acknowledged write; `--fast` turns both off. Ctrl-C or SIGTERM stops everything;
 * the temp dir (data, logs) is removed unless --keep.
 */
import { parseArgs } from 'node:util';
import { type ClusterHandle, requireBinaries, startCluster } from './topology/cluster.js';

const USAGE = 'usage: npm run cluster -- [--nodes 3] [--redis-cluster] [--keep] [--port 8080] [--fast (Postgres fsync off)]';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    'redis-cluster': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    port: { type: 'string' },
    fast: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const nodes = Number(values.nodes);
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) {
  console.error(`cluster: --nodes must be 1..16\n${USAGE}`);
  process.exit(2);
}

let cluster: ClusterHandle | null = null;
let stopping = false;
const stop = async (why: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`\ncluster: ${why}, stopping…`);
  // Still starting: startCluster returns (or cleans up after itself), then the check below stops it.
  if (!cluster) return;
  await cluster.stop();
  console.log(values.keep && cluster ? `cluster: stopped; kept ${cluster.dir}` : 'cluster: stopped');
  process.exit(0);
};
// The terminal sends SIGINT to the whole process group: the children start draining on their own,
// stop() then waits for each and kills whatever is left.
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));

try {
  requireBinaries();
  cluster = await startCluster({
    nodes,
    redisCluster: values['redis-cluster'],
    nginx: true,
    replica: true,
    durable: !values.fast,
    keep: values.keep,
    graceful: true,
    nginxPort: values.port ? Number(values.port) : undefined,
    // Empty means unset: nodes use the built-in development secret, as `npm run token` does.
    env: { NODE_ENV: 'development', JWT_SECRET: process.env.JWT_SECRET ?? '', LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
    onProgress: (what) => console.log(`cluster: ${what}`),
  });
} catch (err) {
  console.error(`cluster: cannot start — ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
if (stopping) {
  await cluster.stop();
  process.exit(0);
}
console.log(`
cluster: up. Open ${cluster.nginx?.url} (through nginx). Temp dir: ${cluster.dir}
  token:  npm run token -- --sub ada --tid acme --role admin
  logs:   tail -f ${cluster.dir}/node-*.log
  stop:   Ctrl-C`);
