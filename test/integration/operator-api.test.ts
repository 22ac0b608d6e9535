import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { type ClusterHandle, requireBinaries, type SpawnedNode, startCluster } from '../../scripts/topology/cluster.js';
import { token } from '../../scripts/topology/tokens.js';
import { loadConfig } from '../../server/config/index.js';
import { ERROR_CODES } from '../../shared/errors.js';
import type { FluxoEvent, PresenceDiff, ServerDisconnect, ServerUnsubscribe } from '../../shared/protocol.js';
import type { AdminConnection, AdminNode, AdminPresence, AdminRoom } from '../../shared/schemas.js';
import { connect as connectSdk, type FluxoClient } from '../../shared/sdk/index.js';
import { type Client, client, eventually, request, startNode } from '../harness/node.js';

const KEY = 'operator-api-test-key-0123456789abcdef';
const PUBLISH_KEY = 'operator-api-publish-key-0123456789';
/** Small, so a killed node leaves the node list within the test's time. */
const TTL_MS = 2000;
const TIMEOUT_MS = 1500;
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

type Gathered<T> = { data: T; complete: boolean; missing: string[] };
type ErrBody = { error: { code: string; message: string } };

/** One suite, run on each Redis variant (STYLE.md: every adapter variant runs the same behaviour). */
for (const variant of [
  { name: 'one Redis, 3 nodes', nodes: 3, redisCluster: false },
  { name: 'a 3-master Redis Cluster (sharded adapter), 2 nodes', nodes: 2, redisCluster: true },
]) {
  describe(`operator API — ${variant.name}`, () => {
    let cluster: ClusterHandle;
    const sockets: Client[] = [];
    const sdks: FluxoClient[] = [];
    /** A node none of a test's users is on (the last one), to show commands cross nodes. */
    const nodes = () => cluster.nodes as [SpawnedNode, SpawnedNode, ...SpawnedNode[]];
    const last = () => nodes()[nodes().length - 1] as SpawnedNode;

    beforeAll(async () => {
      requireBinaries();
      cluster = await startCluster({
        nodes: variant.nodes,
        redisCluster: variant.redisCluster,
        env: {
          LOG_LEVEL: 'warn',
          OPERATOR_API_KEY: KEY,
          PUBLISH_API_KEY: PUBLISH_KEY,
          PRESENCE_TTL_MS: String(TTL_MS),
          OPERATOR_TIMEOUT_MS: String(TIMEOUT_MS),
          // An operator call costs 10 points: 40 calls a second here (the burst test exceeds that).
          RATE_LIMITS: 'http:read=400/1,http:write=400/1',
        },
      });
    });
    afterEach(() => {
      for (const s of sockets.splice(0)) s.close();
      for (const c of sdks.splice(0)) c.close();
    });
    afterAll(async () => {
      await cluster?.stop();
    });

    async function open(node: SpawnedNode, sub: string, tid: string, rooms: string[] = []): Promise<Client> {
      const s = await client(node.url, { token: await token({ sub, tid, name: sub.toUpperCase() }) });
      sockets.push(s);
      for (const room of rooms) {
        const ack = await request(s, 'subscribe', { room });
        if (!('data' in ack)) throw new Error(JSON.stringify(ack));
      }
      return s;
    }

    const asOperator = <T>(node: SpawnedNode, method: string, path: string, body?: unknown) =>
      api<T>(node.url, method, path, { token: KEY, ...(body === undefined ? {} : { body }) });

    it('lists every node with its version and live connections, asked on any node; an admin token counts its tenant only', async () => {
      const [n1, n2] = nodes();
      await open(n2, 'ana', 'ops-nodes');
      await open(last(), 'ben', 'ops-other');
      await open(last(), 'cid', 'ops-other');
      const res = await asOperator<Gathered<AdminNode[]>>(n1, 'GET', '/api/admin/nodes');
      expect(res.status).toBe(200);
      expect(res.body.complete).toBe(true);
      expect(res.body.missing).toEqual([]);
      const byId = new Map(res.body.data.map((n) => [n.nodeId, n]));
      expect([...byId.keys()].sort()).toEqual(
        nodes()
          .map((n) => n.nodeId)
          .sort(),
      );
      for (const n of res.body.data) {
        expect(n.version).toBe(VERSION);
        expect(Date.parse(n.startedAt)).toBeLessThanOrEqual(Date.now());
        expect(n.self).toBe(n.nodeId === n1.nodeId);
      }
      // n2 is last() on two nodes.
      const expected = new Map(nodes().map((n) => [n.nodeId, 0]));
      expected.set(n2.nodeId, 1);
      expected.set(last().nodeId, (expected.get(last().nodeId) ?? 0) + 2);
      expect(new Map(res.body.data.map((n) => [n.nodeId, n.connections]))).toEqual(expected);

      const tenantAdmin = await token({ sub: 'boss', tid: 'ops-nodes', role: 'admin' });
      const scoped = await api<Gathered<AdminNode[]>>(last().url, 'GET', '/api/admin/nodes', { token: tenantAdmin });
      expect(scoped.status).toBe(200);
      expect(scoped.body.data.reduce((sum, n) => sum + n.connections, 0)).toBe(1);
      expect(scoped.body.data.find((n) => n.connections === 1)?.nodeId).toBe(n2.nodeId);
    });

    it('shows rooms with member counts and a room’s presence from any node, sockets of every node included', async () => {
      const [n1, n2] = nodes();
      const tid = 'ops-rooms';
      await open(n1, 'ada', tid, ['tenant']);
      await open(n2, 'ada', tid, ['tenant']);
      await open(last(), 'bob', tid, ['tenant', 'user:bob']);
      await open(n1, 'eve', 'ops-rooms-other', ['tenant']);

      for (const asked of nodes()) {
        const rooms = await asOperator<Gathered<AdminRoom[]> & { truncated: boolean }>(asked, 'GET', `/api/admin/tenants/${tid}/rooms`);
        expect(rooms.status).toBe(200);
        expect(rooms.body).toEqual({
          data: [
            { room: 'tenant', users: 2, connections: 3 },
            { room: 'user:bob', users: 1, connections: 1 },
          ],
          truncated: false,
          complete: true,
          missing: [],
        });
        const presence = await asOperator<{ data: AdminPresence }>(asked, 'GET', `/api/admin/tenants/${tid}/rooms/tenant/presence`);
        expect(presence.status).toBe(200);
        expect(presence.body.data).toEqual({
          room: 'tenant',
          users: 2,
          connections: 3,
          members: [
            { userId: 'ada', name: 'ADA', connections: 2, state: null },
            { userId: 'bob', name: 'BOB', connections: 1, state: null },
          ],
        });
      }
      const cut = await asOperator<Gathered<AdminRoom[]> & { truncated: boolean }>(n2, 'GET', `/api/admin/tenants/${tid}/rooms?limit=1`);
      expect(cut.body.data).toEqual([{ room: 'tenant', users: 2, connections: 3 }]);
      expect(cut.body.truncated).toBe(true);
    });

    it('lists the connections of a user on every node', async () => {
      const [n1, n2] = nodes();
      const tid = 'ops-conns';
      const one = await open(n1, 'ada', tid, ['tenant']);
      const two = await open(n2, 'ada', tid);
      const res = await asOperator<Gathered<AdminConnection[]>>(last(), 'GET', `/api/admin/tenants/${tid}/users/ada/connections`);
      expect(res.status).toBe(200);
      expect(res.body.complete).toBe(true);
      const byId = new Map(res.body.data.map((c) => [c.id, c]));
      expect(byId.get(one.id as string)).toMatchObject({ nodeId: n1.nodeId, transport: 'websocket', role: 'editor', rooms: ['tenant'] });
      expect(byId.get(two.id as string)).toMatchObject({ nodeId: n2.nodeId, rooms: [] });
      expect(res.body.data).toHaveLength(2);
      for (const c of res.body.data) {
        expect(c.address).toBe('127.0.0.1');
        expect(Date.parse(c.tokenExpiresAt)).toBeGreaterThan(Date.now());
      }
    });

    it('disconnects a user on every node with a final code: the client is told first, and the SDK stays offline', async () => {
      const [n1, n2] = nodes();
      const tid = 'ops-kick';
      const raw = await open(n1, 'mal', tid);
      const told: (ServerDisconnect | string)[] = [];
      raw.on('server:disconnect', (info) => told.push(info));
      const gone = new Promise<void>((resolve) =>
        raw.once('disconnect', (reason) => {
          told.push(reason);
          resolve();
        }),
      );
      const sdk = connectSdk({
        url: n2.url,
        token: await token({ sub: 'mal', tid }),
        transports: ['websocket'],
        // A reconnect, were one scheduled, would start within a millisecond: the checks below would see it.
        backoff: { initialMs: 1, maxMs: 1 },
      });
      sdks.push(sdk);
      await sdk.whenConnected();
      const bystander = await open(n1, 'nat', tid);

      const res = await asOperator<Gathered<{ connections: number }>>(last(), 'POST', `/api/admin/tenants/${tid}/users/mal/disconnect`, {
        message: 'Account suspended.',
      });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: { connections: 2 }, complete: true, missing: [] });
      await gone;
      expect(told).toEqual([{ code: 'disconnected_by_operator', message: 'Account suspended.' }, 'io server disconnect']);
      await eventually(() => expect(sdk.status).toMatchObject({ state: 'offline', retrying: false }));
      expect(sdk.status.state === 'offline' && sdk.status.error?.code).toBe('disconnected_by_operator');

      // Barrier: a fresh connection of the same user, then the list; a reconnect of the SDK would show as a second one.
      const fresh = await open(n2, 'mal', tid);
      const after = await asOperator<Gathered<AdminConnection[]>>(n1, 'GET', `/api/admin/tenants/${tid}/users/mal/connections`);
      expect(after.body.data.map((c) => c.id)).toEqual([fresh.id]);
      expect(sdk.status.state).toBe('offline');
      expect(bystander.connected).toBe(true);
    });

    it('with reconnect: true, tells clients `reconnect_requested` and the SDK comes back', async () => {
      const [n1] = nodes();
      const tid = 'ops-bounce';
      const sdk = connectSdk({
        url: n1.url,
        token: await token({ sub: 'rex', tid }),
        transports: ['websocket'],
        backoff: { initialMs: 1, maxMs: 10 },
      });
      sdks.push(sdk);
      await sdk.whenConnected();
      const before = sdk.socket.id;
      const reasons: string[] = [];
      sdk.on('disconnect', (e) => reasons.push(e.code));
      const res = await asOperator<Gathered<{ connections: number }>>(last(), 'POST', `/api/admin/tenants/${tid}/users/rex/disconnect`, {
        reconnect: true,
      });
      expect(res.body.data.connections).toBe(1);
      await eventually(async () => {
        const now = await asOperator<Gathered<AdminConnection[]>>(n1, 'GET', `/api/admin/tenants/${tid}/users/rex/connections`);
        expect(now.body.data).toHaveLength(1);
        expect(now.body.data[0]?.id).not.toBe(before);
      });
      expect(reasons).toEqual(['reconnect_requested']);
      expect(sdk.status.state).toBe('connected');
    });

    it('unsubscribes a user from a room on every node: each connection is told, and no later event of the room reaches it', async () => {
      const [n1, n2] = nodes();
      const tid = 'ops-unsub';
      const watchers = [await open(n1, 'dave', tid, ['tenant']), await open(n2, 'dave', tid, ['tenant'])];
      const diffs: PresenceDiff[] = [];
      watchers[0]?.on('presence', (d) => diffs.push(d));
      const watcherGot: FluxoEvent[][] = watchers.map((w) => {
        const got: FluxoEvent[] = [];
        w.on('event', (e) => got.push(e));
        return got;
      });
      const carol = [await open(n1, 'carol', tid, ['tenant']), await open(n2, 'carol', tid, ['tenant'])];
      const notices: ServerUnsubscribe[] = [];
      const carolGot: FluxoEvent[] = [];
      for (const s of carol) {
        s.on('server:unsubscribe', (n) => notices.push(n));
        s.on('event', (e) => carolGot.push(e));
      }
      // Her join (n1) and second connection (n2) seen, one diff from each node: each node's 50 ms
      // presence window has gone out, so her leave is not in the same window as her join. (Each node
      // sends her as the store has her when its window closes: both may say 2 connections.)
      const carolSeen = () => diffs.filter((d) => [...d.joins, ...d.updates].some((m) => m.userId === 'carol')).length;
      await eventually(() => expect(carolSeen()).toBe(2));

      const res = await asOperator<Gathered<{ connections: number }>>(last(), 'POST', `/api/admin/tenants/${tid}/users/carol/unsubscribe`, {
        room: 'tenant',
      });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: { connections: 2 }, complete: true, missing: [] });
      await eventually(() =>
        expect(notices).toEqual([
          { room: 'tenant', code: 'unsubscribed_by_operator', message: expect.any(String) },
          { room: 'tenant', code: 'unsubscribed_by_operator', message: expect.any(String) },
        ]),
      );
      await eventually(() => expect(diffs.some((d) => d.leaves.includes('carol'))).toBe(true));
      const presence = await asOperator<{ data: AdminPresence }>(n1, 'GET', `/api/admin/tenants/${tid}/rooms/tenant/presence`);
      expect(presence.body.data.members.map((m) => m.userId)).toEqual(['dave']);

      // An event of the room, published after the answer: dave's sockets on both nodes get it…
      const pub = await api<{ data: FluxoEvent }>(n2.url, 'POST', '/api/publish', {
        token: PUBLISH_KEY,
        body: { tenant: tid, room: 'tenant', type: 'after.unsubscribe', data: {} },
      });
      expect(pub.status).toBe(201);
      await eventually(() => {
        for (const got of watcherGot) expect(got.map((e) => e.id)).toContain(pub.body.data.id);
      });
      // …and the node of each carol socket sent it to the room by then; a round trip on each of
      // them after that is the barrier (anything sent to her before the answer arrived before it).
      // The answer itself shows the server no longer counts her in the room.
      for (const s of carol) {
        expect(await request(s, 'unsubscribe', { room: 'tenant' })).toMatchObject({ error: { code: 'invalid_room' } });
      }
      expect(carolGot).toEqual([]);
      // Not a ban: she may subscribe again.
      expect(await request(carol[0] as Client, 'subscribe', { room: 'tenant' })).toHaveProperty('data');
    });

    it('keeps a tenant admin to its own tenant: never sees nor touches another, even a user with the same id', async () => {
      const [n1, n2] = nodes();
      const adminA = await token({ sub: 'boss', tid: 'iso-a', role: 'admin' });
      const zedA = await open(n1, 'zed', 'iso-a', ['tenant']);
      const zedB = await open(n2, 'zed', 'iso-b', ['tenant']);
      const bTold: unknown[] = [];
      zedB.on('server:disconnect', (i) => bTold.push(i));
      zedB.on('server:unsubscribe', (i) => bTold.push(i));

      const asA = (method: string, path: string, body?: unknown) =>
        api<ErrBody>(last().url, method, path, { token: adminA, ...(body === undefined ? {} : { body }) });
      for (const [method, path, body] of [
        ['GET', '/api/admin/tenants/iso-b/rooms'],
        ['GET', '/api/admin/tenants/iso-b/rooms/tenant/presence'],
        ['GET', '/api/admin/tenants/iso-b/users/zed/connections'],
        ['POST', '/api/admin/tenants/iso-b/users/zed/disconnect', {}],
        ['POST', '/api/admin/tenants/iso-b/users/zed/unsubscribe', { room: 'tenant' }],
      ] as const) {
        const res = await asA(method, path, body);
        expect(res.status, `${method} ${path}`).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
      }
      const rooms = await api<Gathered<AdminRoom[]>>(n2.url, 'GET', '/api/admin/tenants/iso-a/rooms', { token: adminA });
      expect(rooms.body.data).toEqual([{ room: 'tenant', users: 1, connections: 1 }]);
      const nodesSeen = await api<Gathered<AdminNode[]>>(n2.url, 'GET', '/api/admin/nodes', { token: adminA });
      expect(nodesSeen.body.data.reduce((n, x) => n + x.connections, 0)).toBe(1);

      // Its own zed goes; the other tenant's zed stays (a round trip after it proves the socket is alive and untold).
      const kicked = new Promise((resolve) => zedA.once('disconnect', resolve));
      const res = await api<Gathered<{ connections: number }>>(n1.url, 'POST', '/api/admin/tenants/iso-a/users/zed/disconnect', {
        token: adminA,
      });
      expect(res.body.data.connections).toBe(1);
      await kicked;
      expect(await request(zedB, 'presence:update', { room: 'tenant', state: { status: 'idle' } })).toHaveProperty('data');
      expect(zedB.connected).toBe(true);
      expect(bTold).toEqual([]);
    });

    it('answers a missing, wrong or under-privileged credential and bad input with typed errors', async () => {
      const [n1] = nodes();
      const editor = await token({ sub: 'ed', tid: 'ops-bad', role: 'editor' });
      const admin = await token({ sub: 'boss', tid: 'ops-bad', role: 'admin' });
      const forged = await token({ sub: 'boss', tid: 'ops-bad', role: 'admin', secret: 'another-secret-that-is-long-enough-to-sign!' });
      const cases: [string, string, { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> }, number, string][] =
        [
          ['GET', '/api/admin/nodes', {}, 401, 'unauthorized'],
          ['GET', '/api/admin/nodes', { token: `${KEY}x` }, 401, 'unauthorized'],
          ['GET', '/api/admin/nodes', { token: PUBLISH_KEY }, 401, 'unauthorized'],
          ['GET', '/api/admin/nodes', { headers: { authorization: `Basic ${KEY}` } }, 401, 'unauthorized'],
          ['GET', '/api/admin/nodes', { token: forged }, 401, 'token_invalid'],
          ['GET', '/api/admin/nodes', { token: editor }, 403, 'forbidden'],
          ['GET', '/api/admin/tenants/ops-bad/rooms', { token: editor }, 403, 'forbidden'],
          ['GET', '/api/admin/tenants/bad%20tenant!/rooms', { token: KEY }, 400, 'validation_failed'],
          ['GET', '/api/admin/tenants/ops-bad/rooms?limit=0', { token: admin }, 400, 'validation_failed'],
          ['GET', '/api/admin/tenants/ops-bad/rooms/nope/presence', { token: KEY }, 400, 'invalid_room'],
          ['GET', '/api/admin/tenants/ops-bad/rooms/workflow%3A%00/presence', { token: KEY }, 400, 'validation_failed'],
          ['GET', '/api/admin/tenants/ops-bad/users/not%20an%20id/connections', { token: KEY }, 400, 'validation_failed'],
          ['POST', '/api/admin/tenants/ops-bad/users/u1/disconnect', { token: KEY, body: { reconnect: 'yes' } }, 400, 'validation_failed'],
          ['POST', '/api/admin/tenants/ops-bad/users/u1/disconnect', { token: KEY, body: { code: 'x' } }, 400, 'validation_failed'],
          ['POST', '/api/admin/tenants/ops-bad/users/u1/disconnect', { token: KEY, raw: '{"reconnect":' }, 400, 'invalid_json'],
          [
            'POST',
            '/api/admin/tenants/ops-bad/users/u1/disconnect',
            { token: KEY, raw: '{}', headers: { 'content-type': 'text/plain' } },
            415,
            'unsupported_media_type',
          ],
          ['POST', '/api/admin/tenants/ops-bad/users/u1/unsubscribe', { token: KEY, body: {} }, 400, 'validation_failed'],
          ['POST', '/api/admin/tenants/ops-bad/users/u1/unsubscribe', { token: KEY, body: { room: 'nope' } }, 400, 'invalid_room'],
          ['POST', '/api/admin/tenants/ops-bad/users/u1/unsubscribe', { token: KEY }, 415, 'unsupported_media_type'],
          ['GET', '/api/admin/tenants/ops-bad/users/u1/disconnect', { token: KEY }, 405, 'method_not_allowed'],
          ['DELETE', '/api/admin/nodes', { token: KEY }, 405, 'method_not_allowed'],
        ];
      for (const [method, path, opts, status, code] of cases) {
        const res = await api<ErrBody>(n1.url, method, path, opts);
        expect(res.status, `${method} ${path} ${JSON.stringify(opts)}`).toBe(status);
        expect(res.body.error.code, `${method} ${path}`).toBe(code);
        expect(ERROR_CODES).toContain(res.body.error.code);
      }
      // Without a body, a disconnect takes the defaults (nobody connected: nothing to do).
      const bare = await api<Gathered<{ connections: number }>>(n1.url, 'POST', '/api/admin/tenants/ops-bad/users/u1/disconnect', {
        token: KEY,
      });
      expect(bare.status).toBe(200);
      expect(bare.body.data.connections).toBe(0);
    });

    it('limits operator calls like API calls (each costs 10 points of http:read): a burst gets 429 with Retry-After', async () => {
      const greedy = await token({ sub: 'greedy', tid: 'ops-limit', role: 'admin' });
      // 1,000 points: over the 400 a second even when the burst straddles two windows.
      const results = await Promise.all(
        Array.from({ length: 100 }, () => api<ErrBody>(nodes()[0].url, 'GET', '/api/admin/nodes', { token: greedy })),
      );
      const refused = results.filter((r) => r.status === 429);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused[0]?.body.error.code).toBe('rate_limited');
      expect(Number(refused[0]?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(results.every((r) => r.status === 200 || r.status === 429)).toBe(true);
    });

    it('drops a killed node from the node list within PRESENCE_TTL_MS; meanwhile calls name it missing and still answer in time', async () => {
      const dead = last();
      const asked = nodes()[0];
      await dead.kill9();
      const killedAt = Date.now();
      let sawMissing = false;
      await eventually(
        async () => {
          const started = Date.now();
          const res = await asOperator<Gathered<AdminNode[]>>(asked, 'GET', '/api/admin/nodes');
          expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1000);
          expect(res.status).toBe(200);
          expect(res.body.data.map((n) => n.nodeId)).not.toContain(dead.nodeId);
          if (res.body.missing.includes(dead.nodeId)) sawMissing = true;
          expect(res.body).toMatchObject({ complete: true, missing: [] });
        },
        TTL_MS + 3000,
        100,
      );
      expect(Date.now() - killedAt).toBeLessThan(TTL_MS + 2 * TIMEOUT_MS + 1000);
      // Right after the kill the node was still believed alive (within the TTL), so it was named.
      expect(sawMissing).toBe(true);
      expect(new Set((await asOperator<Gathered<AdminNode[]>>(asked, 'GET', '/api/admin/nodes')).body.data.map((n) => n.nodeId))).toEqual(
        new Set(
          nodes()
            .filter((n) => n !== dead)
            .map((n) => n.nodeId),
        ),
      );
    });

    it('drops a drained node (SIGTERM) at once: it says goodbye', async () => {
      const index = nodes().length;
      const back = await cluster.restartNode(index);
      const asked = nodes()[0];
      await eventually(async () => {
        const res = await asOperator<Gathered<AdminNode[]>>(asked, 'GET', '/api/admin/nodes');
        expect(res.body.data.map((n) => n.nodeId)).toContain(back.nodeId);
      });
      await back.stop();
      const res = await asOperator<Gathered<AdminNode[]>>(asked, 'GET', '/api/admin/nodes');
      expect(res.body.data.map((n) => n.nodeId)).not.toContain(back.nodeId);
      expect(res.body).toMatchObject({ complete: true, missing: [] });
    });
  });
}

describe('operator API — one node without Redis', () => {
  it('answers alone, from its own sockets', async () => {
    const node = await startNode({ OPERATOR_API_KEY: KEY });
    const s = await client(node.url, { token: await token({ sub: 'solo', tid: 'ops-solo' }) });
    try {
      expect(await request(s, 'subscribe', { room: 'tenant' })).toHaveProperty('data');
      const nodesRes = await api<Gathered<AdminNode[]>>(node.url, 'GET', '/api/admin/nodes', { token: KEY });
      expect(nodesRes.body).toEqual({
        data: [{ nodeId: node.config.nodeId, version: VERSION, startedAt: expect.any(String), connections: 1, self: true }],
        complete: true,
        missing: [],
      });
      const rooms = await api<Gathered<AdminRoom[]>>(node.url, 'GET', '/api/admin/tenants/ops-solo/rooms', { token: KEY });
      expect(rooms.body.data).toEqual([{ room: 'tenant', users: 1, connections: 1 }]);
      const presence = await api<{ data: AdminPresence }>(node.url, 'GET', '/api/admin/tenants/ops-solo/rooms/tenant/presence', {
        token: KEY,
      });
      expect(presence.body.data).toMatchObject({ users: 1, connections: 1 });
    } finally {
      s.close();
      await node.close();
    }
  });
});

describe('OPERATOR_API_KEY configuration', () => {
  it('refuses a short key, a key a Bearer header cannot carry, and the publish key reused', () => {
    expect(() => loadConfig({ OPERATOR_API_KEY: 'short' })).toThrow(/OPERATOR_API_KEY: at least 32 characters/);
    expect(() => loadConfig({ OPERATOR_API_KEY: `${'k'.repeat(32)} x` })).toThrow(/OPERATOR_API_KEY/);
    expect(() => loadConfig({ OPERATOR_API_KEY: KEY, PUBLISH_API_KEY: KEY })).toThrow(/must differ from PUBLISH_API_KEY/);
    expect(loadConfig({ OPERATOR_API_KEY: KEY }).operatorApiKey).toBe(KEY);
    expect(loadConfig({}).operatorApiKey).toBeUndefined();
  });
});
