import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { Cluster, Redis } from 'ioredis';
import { serveSocketIo } from './event.js';
import { listenUws, socketIoOnUws } from './uws.js';

/**
 * Baseline for fan-out across nodes: bare Socket.IO 4.8 on uWebSockets.js with @socket.io/redis-adapter
 * — the classic adapter on REDIS_URL, or the sharded one (SSUBSCRIBE, one channel per room) on the
 * Redis Cluster masters of REDIS_CLUSTER_NODES, configured as Fluxo's bus configures them. No auth,
 * no limits, no metrics.
 */
const nodes = (process.env.REDIS_CLUSTER_NODES ?? '')
  .split(',')
  .filter(Boolean)
  .map((hp) => ({ host: hp.split(':')[0]!, port: Number(hp.split(':')[1]) }));
const url = process.env.REDIS_URL;
if (!nodes.length && !url) throw new Error('REDIS_URL or REDIS_CLUSTER_NODES is required');

const { app, io } = socketIoOnUws();
const [pub, sub] = nodes.length
  ? [new Cluster(nodes), new Cluster(nodes, { shardedSubscribers: true })]
  : [new Redis(url!), new Redis(url!)];
// /health answers only once both connections are up, so the bench never publishes into a queue.
await Promise.all([pub, sub].map((c) => (c.status === 'ready' ? undefined : new Promise((r) => c.once('ready', r)))));
io.adapter(nodes.length ? createShardedAdapter(pub as Cluster, sub as Cluster, { subscriptionMode: 'dynamic' }) : createAdapter(pub, sub));
await serveSocketIo(io);
listenUws(app);
