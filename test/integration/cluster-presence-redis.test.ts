import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisInstance, startRedis } from '../../scripts/topology/redis.js';
import { type PresenceChange, UNBOUNDED } from '../../server/presence/presence.js';
import { RedisPresence } from '../../server/presence/redis.js';
import { eventually } from '../harness/node.js';

const TTL_MS = 1500;
let redis: RedisInstance;
const clients: Redis[] = [];
const stores: RedisPresence[] = [];
/** What any node broadcast: whichever survivor wins the reap lock sends the diff. */
const everyChange: { room: string; change: PresenceChange }[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const s of stores) await s.close();
  for (const c of clients) c.disconnect();
  await redis?.stop();
});

async function presenceNode(nodeId: string) {
  // No offline queue: while "stalled" (disconnected) below, heartbeats fail instead of waiting.
  const client = new Redis(redis.url, { enableOfflineQueue: false });
  clients.push(client);
  await new Promise((r) => client.once('ready', r));
  const changes: { room: string; change: PresenceChange }[] = [];
  const store = new RedisPresence({ redis: client, nodeId, ttlMs: TTL_MS });
  stores.push(store);
  await store.start((room, change) => {
    changes.push({ room, change });
    everyChange.push({ room, change });
  });
  return { store, client, changes };
}

describe('RedisPresence (the store behind cross-node presence)', () => {
  it('counts one user on two nodes once, keeps the state, and snapshots agree on both nodes', async () => {
    const a = await presenceNode('a1');
    const b = await presenceNode('b1');
    const room = 't:acme:tenant';
    expect(await a.store.join(room, { connId: 's1', userId: 'ada', name: 'Ada' })).toMatchObject({
      joins: [{ userId: 'ada', connections: 1, name: 'Ada' }],
    });
    expect(await b.store.join(room, { connId: 's2', userId: 'ada', name: 'Ada' })).toMatchObject({
      updates: [{ userId: 'ada', connections: 2 }],
    });
    await b.store.update(room, 's2', { status: 'editing' });
    for (const s of [a.store, b.store]) {
      expect(await s.snapshot(room, UNBOUNDED)).toEqual({
        count: 1,
        connections: 2,
        members: [{ userId: 'ada', name: 'Ada', connections: 2, state: { status: 'editing' } }],
      });
      // What PresenceDiffs reads when its window closes: the named users as they stand, the absent left out.
      expect(await s.members(room, ['ada', 'nobody'], UNBOUNDED)).toEqual({
        count: 1,
        connections: 2,
        members: new Map([['ada', { userId: 'ada', name: 'Ada', connections: 2, state: { status: 'editing' } }]]),
        crossedOver: false,
      });
    }
    expect(await a.store.leave(room, 's1')).toMatchObject({ updates: [{ userId: 'ada', connections: 1 }] });
    expect(await b.store.leave(room, 's2')).toEqual({ joins: [], leaves: ['ada'], updates: [] });
    expect(await a.store.snapshot(room, UNBOUNDED)).toEqual({ count: 0, connections: 0, members: [] });
    expect(await a.store.members(room, ['ada'], UNBOUNDED)).toEqual({ count: 0, connections: 0, members: new Map(), crossedOver: false });
  });

  it('leaves the members of a room over the bound unread, and lets one read of all the nodes say it crossed over', async () => {
    const a = await presenceNode('a3');
    const b = await presenceNode('b3');
    const room = 't:acme:workflow:big';
    await a.store.join(room, { connId: 's1', userId: 'ada', name: null });
    await b.store.join(room, { connId: 's2', userId: 'bob', name: null });
    await b.store.join(room, { connId: 's3', userId: 'cy', name: null });
    expect(await a.store.snapshot(room, 2)).toEqual({ count: 3, connections: 3, members: [] });
    expect(await b.store.members(room, ['cy'], 2)).toEqual({ count: 3, connections: 3, members: new Map(), crossedOver: true });
    expect(await a.store.members(room, ['ada'], 2)).toEqual({ count: 3, connections: 3, members: new Map(), crossedOver: false });
    await a.store.leave(room, 's1');
    expect((await a.store.members(room, ['ada'], 2)).count).toBe(2);
    await a.store.join(room, { connId: 's4', userId: 'dan', name: null });
    expect((await a.store.members(room, ['dan'], 2)).crossedOver).toBe(true);
  });

  it('writes its entries again after Redis lost them (restart), and after being wrongly declared dead', async () => {
    const a = await presenceNode('a2');
    const b = await presenceNode('b2');
    const room = 't:acme:workflow:w1';
    await a.store.join(room, { connId: 's1', userId: 'grace', name: null });
    await a.client.flushall();
    expect((await b.store.snapshot(room, UNBOUNDED)).members).toEqual([]);
    // The bus calls this when Redis is back; the heartbeat also notices its key went missing.
    await a.store.reassert();
    expect((await b.store.snapshot(room, UNBOUNDED)).members.map((m) => m.userId)).toEqual(['grace']);

    // Cut off long enough for a survivor to reap us: we come back by ourselves on the next beat.
    a.client.disconnect();
    await eventually(() => expect(everyChange.some((c) => c.change.leaves.includes('grace'))).toBe(true), TTL_MS * 2);
    expect((await b.store.snapshot(room, UNBOUNDED)).members).toEqual([]);
    await a.client.connect();
    await eventually(
      async () => expect((await b.store.snapshot(room, UNBOUNDED)).members.map((m) => m.userId)).toEqual(['grace']),
      TTL_MS * 2,
    );
    expect(a.changes.some((c) => c.room === room && c.change.joins.some((j) => j.userId === 'grace'))).toBe(true);
  });
});
