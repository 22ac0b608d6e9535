import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { type ClusterHandle, requireBinaries, startCluster } from '../../scripts/topology/cluster.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { PresenceDiff, Workflow } from '../../shared/protocol.js';
import { internalRoom } from '../../shared/rooms.js';
import { connect as sdkConnect } from '../../shared/sdk/index.js';
import { clientPool, eventually, request } from '../harness/node.js';

let cluster: ClusterHandle;
const { connect, closeAll } = clientPool();

beforeAll(async () => {
  requireBinaries();
  cluster = await startCluster({ nodes: 2, redisCluster: true, env: { LOG_LEVEL: 'warn' } });
});
afterAll(async () => {
  closeAll();
  await cluster?.stop();
});

describe('on a 3-master Redis Cluster (sharded adapter, SSUBSCRIBE)', () => {
  it('fans out across nodes for rooms whose channels live on different shards, and shares presence', async () => {
    const [n1, n2] = cluster.nodes;
    if (!n1 || !n2 || !cluster.redisCluster) throw new Error('cluster not started');
    const admin = await token({ sub: 'boss', tid: 'shard', role: 'admin' });
    const boards: Workflow[] = [];

    // The adapter's channel per room: <prefix>:sio#/#<internal room>#. Boards are made until their
    // channels live on at least two shards (ids are random: six boards all fell on one shard of three
    // once, 1 run in 243), so the fan-out below crosses shards.
    const redis = new Cluster(cluster.redisCluster.nodes);
    try {
      await new Promise<void>((r) => redis.once('ready', () => r()));
      const ranges = await redis.cluster('SLOTS');
      const shardOf = (slot: number) => ranges.find(([lo, hi]) => slot >= lo && slot <= hi)?.[2]?.[1];
      const shards = new Set<unknown>();
      while (boards.length < 6 || (shards.size < 2 && boards.length < 40)) {
        const b = await createBoard(n2.url, admin);
        boards.push(b);
        shards.add(shardOf(Number(await redis.cluster('KEYSLOT', `fluxo:sio#/#t:shard:workflow:${b.id}#`))));
      }
      expect(shards.size).toBeGreaterThan(1);
      expect(shards.has(undefined)).toBe(false);
    } finally {
      redis.disconnect();
    }

    const watcher = await connect(n1.url, await token({ sub: 'w', tid: 'shard' }));
    const seen = new Set<string>();
    watcher.on('event', (e) => seen.add(e.rooms.find((r) => r.startsWith('workflow:')) ?? ''));
    for (const b of boards) expect(await request(watcher, 'subscribe', { room: `workflow:${b.id}` })).toHaveProperty('data');
    for (const b of boards) await createProcess(n2.url, admin, b.id);
    await eventually(() => expect([...seen].sort()).toEqual(boards.map((b) => `workflow:${b.id}`).sort()));

    // Presence goes through the same Cluster (hash-tagged keys per room).
    const diffs: PresenceDiff[] = [];
    watcher.on('presence', (d) => diffs.push(d));
    await request(watcher, 'subscribe', { room: 'tenant' });
    const other = await connect(n2.url, await token({ sub: 'o', tid: 'shard' }));
    await request(other, 'subscribe', { room: 'tenant' });
    await eventually(() => expect(diffs.some((d) => d.joins.some((j) => j.userId === 'o'))).toBe(true));
  });

  it("relays a node's committed events as one message per tenant on that tenant's channel, none on the rooms' channels", async () => {
    const [n1, n2] = cluster.nodes;
    if (!n1 || !n2 || !cluster.redisCluster) throw new Error('cluster not started');
    const tenant = 'relay';
    const admin = await token({ sub: 'boss', tid: tenant, role: 'admin' });
    const board = await createBoard(n2.url, admin);
    const rooms = ['tenant', `workflow:${board.id}`];
    // A reader on node 1 in two of each event's three rooms: node 1 has the tenant's rooms, so it
    // listens on the tenant's relay channel (server/realtime/redis-adapter.ts).
    const reader = await connect(n1.url, await token({ sub: 'r', tid: tenant }));
    const got: string[] = [];
    reader.on('event', (e) => got.push(`${e.rooms.find((r) => r.startsWith('workflow:') || r === 'tenant')}:${e.id}`));
    for (const room of rooms) expect(await request(reader, 'subscribe', { room })).toHaveProperty('data');

    // What crosses Redis, listened to on each channel: the tenant's relay and the rooms' own.
    const spy = new Cluster(cluster.redisCluster.nodes, { shardedSubscribers: true });
    const heard = new Map<string, string[]>();
    try {
      await new Promise<void>((r) => spy.once('ready', () => r()));
      const relay = `fluxo:sio#/#fluxo-relay:${tenant}#`;
      const roomChannels = rooms.map((r) => `fluxo:sio#/#${internalRoom(tenant, r)}#`);
      spy.on('smessage', (channel: string, message: string) => {
        const m = JSON.parse(message) as { data?: { packet?: unknown[] | { data?: unknown[] } } };
        const packet = m.data?.packet;
        // A relay is a server-side emit ([name, batch]); a room broadcast a Socket.IO packet ({ data: [name, …] }).
        const name = Array.isArray(packet) ? packet[0] : packet?.data?.[0];
        heard.set(channel, [...(heard.get(channel) ?? []), String(name)]);
      });
      for (const channel of [relay, ...roomChannels]) await spy.ssubscribe(channel);

      const created = [];
      for (let i = 0; i < 8; i++) created.push(await createProcess(n2.url, admin, board.id, `c${i}`));
      // Every event reached the reader in both rooms: so every relay message was published before.
      await eventually(() => expect(got).toHaveLength(2 * created.length));
      await eventually(() => expect(heard.get(relay)?.length ?? 0).toBeGreaterThan(0));
      // Each relay message is one committed batch of the tenant's events: at most one per event,
      // where a broadcast per room took three.
      expect(heard.get(relay)?.every((name) => name === 'fluxo:events')).toBe(true);
      expect(heard.get(relay)?.length).toBeLessThanOrEqual(created.length);
      for (const channel of roomChannels) expect(heard.get(channel) ?? []).not.toContain('event');
    } finally {
      spy.disconnect();
    }
  });

  it('relays a logout to the other node, whose socket is told token_revoked before it is cut', async () => {
    const [n1, n2] = cluster.nodes;
    if (!n1 || !n2) throw new Error('cluster not started');
    const tok = await token({ sub: 'leaver', tid: 'shard-rev' });
    const onTwo = await connect(n2.url, tok);
    const seen: string[] = [];
    onTwo.on('server:disconnect', (info) => seen.push(info.code));
    const gone = new Promise((resolve) => onTwo.once('disconnect', (reason) => resolve(seen.push(reason))));
    expect((await api<{ data: { revoked: boolean } }>(n1.url, 'POST', '/auth/logout', { token: tok })).body.data.revoked).toBe(true);
    await gone;
    expect(seen).toEqual(['token_revoked', 'io server disconnect']);
  });

  it('is not ready while a master is down and tells clients to resync once it is back: an event committed meanwhile arrives with nothing after it', async () => {
    const [n1, n2] = cluster.nodes;
    if (!n1 || !n2 || !cluster.redisCluster) throw new Error('cluster not started');
    const admin = await token({ sub: 'boss', tid: 'shard-kill', role: 'admin' });
    const board = await createBoard(n2.url, admin);
    const room = `workflow:${board.id}`;
    const client = sdkConnect({ url: n1.url, token: await token({ sub: 'r', tid: 'shard-kill' }), transports: ['websocket'] });
    try {
      let resyncs = 0;
      client.socket.on('resync', () => resyncs++);
      const seen: string[] = [];
      await client.subscribe(room, (e) => seen.push(e.processId ?? '')).ready;

      // The master owning the tenant's relay channel, which carries its events to the other nodes
      // (server/realtime/redis-adapter.ts), crashes: the Cluster clients stay `ready`; only the shard
      // watch (server/bus/shards.ts) sees it.
      const master = await cluster.redisCluster.masterOf('fluxo:sio#/#fluxo-relay:shard-kill#');
      await master.stop();
      await eventually(
        async () => expect(await (await fetch(`${n1.url}/ready`)).text()).toContain('redis cluster shard not delivering'),
        10_000,
      );
      // Committed (Postgres is up), published on a shard that is down: ioredis retries the SPUBLISH, but
      // whether it lands after the shard's subscriber is back is a race (a bare ioredis probe lost a fifth
      // of its messages over a 3 s outage), and no later event in the room would show the client a gap.
      // The resync is what makes it certain.
      const during = await createProcess(n2.url, admin, board.id, 'during');
      await master.restart();
      await eventually(() => expect(seen).toContain(during.id), 20_000);
      expect(resyncs).toBeGreaterThan(0);
      for (const n of [n1, n2]) await eventually(async () => expect((await fetch(`${n.url}/ready`)).status).toBe(200), 10_000);
    } finally {
      client.close();
    }
  });
});
