import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
// Not in the package's index, but no `exports` map forbids it; the version is pinned in package.json
// and test/integration/cluster-redis-cluster.test.ts listens on the relay and room channels.
import { SSUBSCRIBE, SUNSUBSCRIBE } from '@socket.io/redis-adapter/dist/util.js';
import type { RedisBus } from '../bus/bus.js';
import { EVENTS_RELAY } from './relay.js';

/** What `io.adapter(...)` takes. */
export type AdapterConstructor = ReturnType<typeof createAdapter>;

/** The sharded adapter's members this module relies on (private in its typings). */
interface ShardedInternals {
  on(event: 'create-room' | 'delete-room', listener: (room: string) => void): unknown;
  close(): Promise<void> | void;
  computeChannel(message: { type: number; data?: { requestId?: unknown; packet?: unknown } }): string;
  dynamicChannel(room: string): string;
  onRawMessage(raw: Buffer, channel: Buffer): void;
}

/** socket.io-adapter's MessageType.SERVER_SIDE_EMIT. */
const SERVER_SIDE_EMIT = 9;
/** Server-internal rooms are `t:<tenant>:<room>` (shared/rooms.ts); tenant ids never contain ':'. */
const TENANT_OF_ROOM = /^t:([^:]+):/;

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
  const sharded = createShardedAdapter(pub, sub, { channelPrefix: `${bus.prefix}:sio`, subscriptionMode: 'dynamic' });
  // A function, not an arrow: Socket.IO calls it with `new` (returning an object from it is what
  // createShardedAdapter's own factory does too).
  return function relayingAdapter(nsp: unknown) {
    return relayPerTenant(sharded(nsp) as unknown as ShardedInternals, sub);
  } as unknown as AdapterConstructor;
}

/**
 * Gives the sharded adapter one channel per tenant for fanout's relay (`fluxo:events`, realtime/fanout.ts):
 * a node subscribes to a tenant's channel while it has a room of that tenant, and a relay message
 * naming one tenant is published there instead of on the namespace's channel, which every node
 * hears. So a committed batch crosses as one SPUBLISH per tenant, heard only by the nodes with that
 * tenant's sockets, where the per-room channels took one per room of each event (three per
 * transition) — and one channel per tenant also keeps a tenant's events in order across its rooms.
 * Everything else (presence diffs, disconnects) still goes through the per-room channels.
 */
function relayPerTenant<A extends ShardedInternals>(adapter: A, sub: unknown): A {
  const rooms = new Map<string, number>();
  const channelOf = (tenant: string) => adapter.dynamicChannel(`fluxo-relay:${tenant}`);
  const handler = (raw: Buffer, channel: Buffer) => adapter.onRawMessage(raw, channel);
  adapter.on('create-room', (room) => {
    const tenant = TENANT_OF_ROOM.exec(room)?.[1];
    if (tenant === undefined) return;
    const n = (rooms.get(tenant) ?? 0) + 1;
    rooms.set(tenant, n);
    if (n === 1) SSUBSCRIBE(sub, channelOf(tenant), handler);
  });
  adapter.on('delete-room', (room) => {
    const tenant = TENANT_OF_ROOM.exec(room)?.[1];
    const n = tenant === undefined ? undefined : rooms.get(tenant);
    if (tenant === undefined || n === undefined) return;
    if (n > 1) rooms.set(tenant, n - 1);
    else {
      rooms.delete(tenant);
      SUNSUBSCRIBE(sub, channelOf(tenant));
    }
  });
  const computeChannel = adapter.computeChannel.bind(adapter);
  adapter.computeChannel = (message) => {
    const tenant =
      message.type === SERVER_SIDE_EMIT && message.data?.requestId === undefined ? relayTenant(message.data?.packet) : undefined;
    return tenant === undefined ? computeChannel(message) : channelOf(tenant);
  };
  const close = adapter.close.bind(adapter);
  adapter.close = async () => {
    await close();
    for (const tenant of rooms.keys()) SUNSUBSCRIBE(sub, channelOf(tenant));
    rooms.clear();
  };
  return adapter;
}

/** The tenant of a relay packet `['fluxo:events', [tenant, event][]]` whose events are all that tenant's. */
function relayTenant(packet: unknown): string | undefined {
  if (!Array.isArray(packet) || packet[0] !== EVENTS_RELAY || !Array.isArray(packet[1])) return undefined;
  const relayed = packet[1] as unknown[];
  const first = relayed[0];
  const tenant = Array.isArray(first) && typeof first[0] === 'string' ? first[0] : undefined;
  return tenant !== undefined && relayed.every((r) => Array.isArray(r) && r[0] === tenant) ? tenant : undefined;
}
