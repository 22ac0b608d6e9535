import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { RedisBus } from '../bus/bus.js';

/** What `io.adapter(...)` takes. */
export type AdapterConstructor = ReturnType<typeof createAdapter>;

/**
 * Socket.IO's cross-node fan-out over the bus' adapter connections: the classic adapter on one
 * Redis, the sharded one on a Redis Cluster.
 */
export function redisAdapter(bus: RedisBus): AdapterConstructor {
  const pub = bus.client('adapter-pub');
  const sub = bus.client('adapter-sub');
  if (!('cluster' in bus.target)) return createAdapter(pub, sub, { key: `${bus.prefix}:sio` });
  // Redis 7 sharded Pub/Sub: each room's channel lives on one shard, so a publish costs one shard
  // instead of being broadcast to the whole cluster; 'dynamic' = one channel per room.
  return createShardedAdapter(pub, sub, {
    channelPrefix: `${bus.prefix}:sio`,
    subscriptionMode: 'dynamic',
  }) as unknown as AdapterConstructor;
}
