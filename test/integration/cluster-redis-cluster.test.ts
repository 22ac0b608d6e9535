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
    for (let i = 0; i < 6; i++) boards.push(await createBoard(n2.url, admin));

    // The adapter's channel per room: <prefix>:sio#/#<internal room>#. Show they spread over shards.
    const redis = new Cluster(cluster.redisCluster.nodes);
    try {
      await new Promise<void>((r) => redis.once('ready', () => r()));
      const slots = await Promise.all(boards.map((b) => redis.cluster('KEYSLOT', `fluxo:sio#/#t:shard:workflow:${b.id}#`)));
      const ranges = await redis.cluster('SLOTS');
      const shardOf = (slot: number) => ranges.find(([lo, hi]) => slot >= lo && slot <= hi)?.[2]?.[1];
      expect(new Set(slots.map((s) => shardOf(Number(s)))).size).toBeGreaterThan(1);
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

      // The master owning the room's channel (server/realtime/redis-adapter.ts) crashes: the Cluster
      // clients stay `ready`; only the shard watch (server/bus/shards.ts) sees it.
      const master = await cluster.redisCluster.masterOf(`fluxo:sio#/#${internalRoom('shard-kill', room)}#`);
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
