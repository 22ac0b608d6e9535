import { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { type ClusterHandle, firstTwo, requireBinaries, startCluster } from '../../scripts/topology/cluster.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { PresenceDiff } from '../../shared/protocol.js';
import { client, clientPool, collect, eventually, helloOf, request } from '../harness/node.js';

let cluster: ClusterHandle;
const { connect, closeAll } = clientPool();

const two = () => firstTwo(cluster);

beforeAll(async () => {
  requireBinaries();
  // With a streaming replica: lists and point reads may lag, and cross-node users must still find fresh rows.
  cluster = await startCluster({ nodes: 2, replica: true, env: { RATE_LIMITS: 'subscribe=4/60', LOG_LEVEL: 'warn' } });
});
afterAll(async () => {
  closeAll();
  await cluster?.stop();
});

describe('two nodes sharing Redis and Postgres', () => {
  it('delivers to a client on node 1 an event committed through node 2', async () => {
    const [n1, n2] = two();
    const admin = await token({ sub: 'boss', tid: 'fan', role: 'admin' });
    const board = await createBoard(n2.url, admin);
    const watcher = await connect(n1.url, await token({ sub: 'w', tid: 'fan' }));
    expect((await helloOf(watcher)).nodeId).toBe(n1.nodeId);
    const box = collect(watcher);
    expect(await request(watcher, 'subscribe', { room: `workflow:${board.id}` })).toHaveProperty('data');
    const p = await createProcess(n2.url, admin, board.id, 'cross-node');
    await eventually(() => expect(box.events.some((e) => e.data && JSON.stringify(e).includes(p.id))).toBe(true));
    // One connection per job, each reported.
    const metrics = await (await fetch(`${n1.url}/metrics`)).text();
    for (const role of ['adapter-pub', 'adapter-sub', 'limiter', 'state', 'state-sub']) {
      expect(metrics).toMatch(new RegExp(`redis_connected\\{[^}]*role="${role}"[^}]*\\} 1`));
    }
  });

  it('shows a user on node 2 to a watcher on node 1, counting one user on two nodes once', async () => {
    const [n1, n2] = two();
    const watcher = await connect(n1.url, await token({ sub: 'watcher', tid: 'pres' }));
    const diffs: PresenceDiff[] = [];
    watcher.on('presence', (d) => diffs.push(d));
    await request(watcher, 'subscribe', { room: 'tenant' });

    const ada = await token({ sub: 'ada', tid: 'pres', name: 'Ada' });
    const onTwo = await connect(n2.url, ada);
    await request(onTwo, 'subscribe', { room: 'tenant' });
    await eventually(() => expect(diffs.some((d) => d.joins.some((j) => j.userId === 'ada'))).toBe(true));

    const onOne = await connect(n1.url, ada);
    const ack = await request(onOne, 'subscribe', { room: 'tenant' });
    if (!('data' in ack)) throw new Error(JSON.stringify(ack));
    expect(ack.data.presence.filter((m) => m.userId === 'ada')).toEqual([expect.objectContaining({ name: 'Ada', connections: 2 })]);
    await eventually(() => expect(diffs.some((d) => d.updates.some((u) => u.userId === 'ada' && u.connections === 2))).toBe(true));
    expect(diffs.filter((d) => d.joins.some((j) => j.userId === 'ada'))).toHaveLength(1);

    onTwo.close();
    await eventually(() => expect(diffs.some((d) => d.updates.some((u) => u.userId === 'ada' && u.connections === 1))).toBe(true));
    onOne.close();
    await eventually(() => expect(diffs.some((d) => d.leaves.includes('ada'))).toBe(true));
  });

  it('logout on node 1 disconnects the token on node 2, and node 2 refuses it from then on', async () => {
    const [n1, n2] = two();
    const tok = await token({ sub: 'leaver', tid: 'rev' });
    const onTwo = await connect(n2.url, tok);
    // Told why first, on the other node too (the reason travels with the relayed disconnect).
    const seen: string[] = [];
    onTwo.on('server:disconnect', (info) => seen.push(info.code));
    const disconnected = new Promise((resolve) => onTwo.once('disconnect', (reason) => resolve(seen.push(reason))));
    const res = await api<{ data: { revoked: boolean } }>(n1.url, 'POST', '/auth/logout', { token: tok });
    expect(res.body.data.revoked).toBe(true);
    await disconnected;
    expect(seen).toEqual(['token_revoked', 'io server disconnect']);
    await expect(client(n2.url, { token: tok })).rejects.toMatchObject({ data: { code: 'token_revoked' } });
  });

  it('shares one rate-limit budget for a user alternating between nodes', async () => {
    const [n1, n2] = two();
    const tok = await token({ sub: 'busy', tid: 'rl' });
    const a = await connect(n1.url, tok);
    const b = await connect(n2.url, tok);
    const codes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await request(i % 2 ? b : a, 'subscribe', { room: 'tenant' });
      codes.push('data' in r ? 'ok' : r.error.code);
    }
    // Budget subscribe=4/60 for the whole cluster, not 4 per node.
    expect(codes).toEqual(['ok', 'ok', 'ok', 'ok', 'rate_limited', 'rate_limited']);
  });

  it('delivers what another backend emits with @socket.io/redis-emitter (key fluxo:sio) to clients on every node', async () => {
    const [n1, n2] = two();
    const tok = await token({ sub: 'e', tid: 'emit' });
    const clients = [await connect(n1.url, tok), await connect(n2.url, tok)];
    const got: unknown[][] = clients.map(() => []);
    for (const [i, c] of clients.entries()) {
      c.on('event', (e) => got[i]?.push(e));
      await request(c, 'subscribe', { room: 'tenant' });
    }
    const redis = new Redis(cluster.env.REDIS_URL ?? '');
    try {
      const emitter = new Emitter(redis, { key: 'fluxo:sio' });
      emitter.to('t:emit:tenant').emit('event', { id: 0, type: 'custom', rooms: ['tenant'], data: { hello: 'from elsewhere' } });
      await eventually(() => expect(got.map((g) => g.length)).toEqual([1, 1]));
    } finally {
      redis.disconnect();
    }
  });
});
