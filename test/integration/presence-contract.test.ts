import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RedisInstance, startRedis } from '../../scripts/topology/redis.js';
import { MemoryPresence } from '../../server/presence/memory.js';
import { type PresenceStore, UNBOUNDED } from '../../server/presence/presence.js';
import { RedisPresence } from '../../server/presence/redis.js';
import type { PresenceState } from '../../shared/protocol.js';

// One behavioural suite for every PresenceStore: what a request of this node gets back and what a
// snapshot says must not depend on whether the node runs alone (memory) or in a cluster (Redis).
// Cross-node behaviour (dead nodes reaped, diffs merged) is in presence-cluster and cluster-failover.

let redis: RedisInstance | undefined;
const connections: Redis[] = [];

const variants = [
  { name: 'memory', open: async (): Promise<PresenceStore> => new MemoryPresence() },
  {
    name: 'redis',
    open: async (): Promise<PresenceStore> => {
      redis ??= await startRedis();
      const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      connections.push(connection);
      // A node id of its own per test: no other test's entries, nothing reaped but its own.
      return new RedisPresence({ redis: connection, nodeId: `contract-${randomUUID()}`, prefix: 'contract' });
    },
  },
] as const;

afterAll(async () => {
  for (const c of connections) c.disconnect();
  await redis?.stop();
});

describe.each(variants)('presence on $name', ({ open }) => {
  let store: PresenceStore;
  /** A room of its own per test (the Redis server is shared by the tests of a variant). */
  let room: string;

  beforeAll(async () => {
    await open().then((s) => s.close()); // starts the Redis server once, outside a test's timeout
  });
  afterEach(async () => {
    await store.close();
  });

  async function fresh(): Promise<PresenceStore> {
    store = await open();
    await store.start(() => {});
    room = `t:contract-${randomUUID()}:tenant`;
    return store;
  }

  const ada = { connId: 'c1', userId: 'ada', name: 'Ada' };
  /** The whole list, as the operator API reads it. */
  const listOf = async (r: string) => (await store.snapshot(r, UNBOUNDED)).members;

  it('joins a user once: a first connection is a join, a second an update of the count, the same one again nothing', async () => {
    const s = await fresh();
    expect(await s.join(room, ada)).toEqual({
      joins: [{ userId: 'ada', name: 'Ada', connections: 1, state: null }],
      leaves: [],
      updates: [],
    });
    expect(await s.join(room, { ...ada, connId: 'c2' })).toEqual({
      joins: [],
      leaves: [],
      updates: [{ userId: 'ada', name: 'Ada', connections: 2, state: null }],
    });
    expect(await s.join(room, ada)).toEqual({ joins: [], leaves: [], updates: [] });
    expect(await listOf(room)).toEqual([{ userId: 'ada', name: 'Ada', connections: 2, state: null }]);
  });

  it('leaves a user when the last connection goes, and ignores a connection it does not know', async () => {
    const s = await fresh();
    await s.join(room, ada);
    await s.join(room, { ...ada, connId: 'c2' });
    expect(await s.leave(room, 'unknown')).toEqual({ joins: [], leaves: [], updates: [] });
    expect(await s.leave(room, 'c1')).toEqual({
      joins: [],
      leaves: [],
      updates: [{ userId: 'ada', name: 'Ada', connections: 1, state: null }],
    });
    expect(await s.leave(room, 'c2')).toEqual({ joins: [], leaves: ['ada'], updates: [] });
    expect(await s.leave(room, 'c2')).toEqual({ joins: [], leaves: [], updates: [] });
    expect(await listOf(room)).toEqual([]);
  });

  it("sets a member's state from any of its connections, and not for a connection outside the room", async () => {
    const s = await fresh();
    await s.join(room, ada);
    await s.join(room, { ...ada, connId: 'c2' });
    const state: PresenceState = { status: 'editing', card: 'p1' };
    expect(await s.update(room, 'c2', state)).toEqual({
      joins: [],
      leaves: [],
      updates: [{ userId: 'ada', name: 'Ada', connections: 2, state }],
    });
    expect(await s.update(room, 'nobody', { status: 'idle' })).toEqual({ joins: [], leaves: [], updates: [] });
    expect(await s.update(`${room}-other`, 'c1', { status: 'idle' })).toEqual({ joins: [], leaves: [], updates: [] });
    expect(await listOf(room)).toEqual([{ userId: 'ada', name: 'Ada', connections: 2, state }]);
  });

  it('keeps rooms apart and answers members() for the users asked about who are present', async () => {
    const s = await fresh();
    await s.join(room, ada);
    await s.join(room, { connId: 'c3', userId: 'bob', name: null });
    await s.join(`${room}-other`, { connId: 'c4', userId: 'eve', name: 'Eve' });
    expect((await listOf(room)).map((m) => m.userId).sort()).toEqual(['ada', 'bob']);
    expect(await listOf(`${room}-other`)).toEqual([{ userId: 'eve', name: 'Eve', connections: 1, state: null }]);
    const read = await s.members(room, ['bob', 'eve', 'nobody'], UNBOUNDED);
    expect(read.count).toBe(2);
    expect([...read.members.entries()]).toEqual([['bob', { userId: 'bob', name: null, connections: 1, state: null }]]);
    expect(await s.snapshot(`${room}-empty`, UNBOUNDED)).toEqual({ count: 0, connections: 0, members: [] });
  });

  it('counts users and connections, and leaves the list out of a snapshot only when the connections are more than the bound', async () => {
    const s = await fresh();
    await s.join(room, ada);
    await s.join(room, { ...ada, connId: 'c2' }); // a second connection is not a second user
    await s.join(room, { connId: 'c3', userId: 'bob', name: null });
    const atBound = await s.snapshot(room, 3);
    expect([atBound.count, atBound.connections]).toEqual([2, 3]);
    expect(atBound.members.map((m) => m.userId).sort()).toEqual(['ada', 'bob']);
    // Two users, but three connections: over a bound of 2.
    expect(await s.snapshot(room, 2)).toEqual({ count: 2, connections: 3, members: [] });
    // 0: presence lists off, the sizes still given.
    expect(await s.snapshot(room, 0)).toEqual({ count: 2, connections: 3, members: [] });
    await s.leave(room, 'c2');
    expect((await s.snapshot(room, 2)).members.map((m) => m.userId).sort()).toEqual(['ada', 'bob']);
  });

  it('reads no member of a room over the bound, and says it crossed over once per crossing', async () => {
    const s = await fresh();
    await s.join(room, ada);
    await s.join(room, { connId: 'c3', userId: 'bob', name: null });
    expect(await s.members(room, ['ada'], 2)).toEqual({
      count: 2,
      connections: 2,
      members: new Map([['ada', { userId: 'ada', name: 'Ada', connections: 1, state: null }]]),
      crossedOver: false,
    });
    await s.join(room, { connId: 'c4', userId: 'cy', name: null });
    expect(await s.members(room, ['ada', 'cy'], 2)).toEqual({ count: 3, connections: 3, members: new Map(), crossedOver: true });
    // Still over: said already (by this store or, with Redis, any node's).
    expect(await s.members(room, ['cy'], 2)).toEqual({ count: 3, connections: 3, members: new Map(), crossedOver: false });
    await s.leave(room, 'c4');
    expect((await s.members(room, ['cy'], 2)).crossedOver).toBe(false);
    // Back under, then over again: a new crossing.
    await s.join(room, { connId: 'c5', userId: 'dan', name: null });
    expect(await s.members(room, ['dan'], 2)).toEqual({ count: 3, connections: 3, members: new Map(), crossedOver: true });
    // A user's second connection crosses too, though the users stay 2.
    await s.leave(room, 'c5');
    expect((await s.members(room, ['ada'], 2)).crossedOver).toBe(false);
    await s.join(room, { ...ada, connId: 'c6' });
    expect(await s.members(room, ['ada'], 2)).toEqual({ count: 2, connections: 3, members: new Map(), crossedOver: true });
  });
});

describe('presence on redis: the over-the-bound mark', () => {
  it('expires: a room that empties while over the bound leaves nothing in Redis for good', async () => {
    redis ??= await startRedis();
    const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    connections.push(connection);
    const s = new RedisPresence({ redis: connection, nodeId: `contract-${randomUUID()}`, prefix: 'contract' });
    await s.start(() => {});
    try {
      const room = `t:contract-${randomUUID()}:tenant`;
      const mark = `contract:presence:pt:{${room}}`;
      for (const c of ['c1', 'c2', 'c3']) await s.join(room, { connId: c, userId: c, name: null });
      expect((await s.members(room, ['c1'], 2)).crossedOver).toBe(true);
      const day = 24 * 60 * 60 * 1000;
      const ttl = await connection.pttl(mark);
      expect(ttl).toBeGreaterThan(day - 60_000);
      expect(ttl).toBeLessThanOrEqual(day);
      // Looked at again while still over: the mark's life starts again, and it is not a new crossing.
      await connection.pexpire(mark, 5_000);
      expect((await s.members(room, ['c2'], 2)).crossedOver).toBe(false);
      expect(await connection.pttl(mark)).toBeGreaterThan(day - 60_000);
      // Everyone leaves while over: no member read comes again, so only the expiry removes the mark.
      for (const c of ['c1', 'c2', 'c3']) await s.leave(room, c);
      expect(await connection.pttl(mark)).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });
});
