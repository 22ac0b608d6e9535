import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { FluxoEvent, Process, TransitionResult, Workflow } from '../../shared/protocol.js';
import { client, request, startNode } from '../harness/node.js';

/**
 * The reads the board makes on load (issue 11, item 4): who is signed in without an error status,
 * column totals, and a room's recent history. The SQL runs on PGlite and on a real Postgres 15.
 */

const LIMITS = 'http:write=10000/1,http:read=10000/1,auth=10000/1';

type History = { data: FluxoEvent[]; next: number | null };
const PUBLISH_KEY = 'board-reads-publish-key-0123456789';

describe.each([
  { backend: 'pglite', env: async () => ({ pg: null as PostgresHandle | null, env: {} }) },
  {
    backend: 'postgres',
    env: async () => {
      const pg = await startPostgres();
      return { pg, env: { DATABASE_URL: pg.url } };
    },
  },
])('board reads on $backend', ({ env }) => {
  let pg: PostgresHandle | null = null;
  let node: FluxoNode;
  let admin: string;

  beforeAll(async () => {
    const started = await env();
    pg = started.pg;
    node = await startNode({ RATE_LIMITS: LIMITS, PUBLISH_API_KEY: PUBLISH_KEY, ...started.env });
    admin = await token({ sub: 'ada', tid: 'acme', role: 'admin' });
  });
  afterAll(async () => {
    await node?.close();
    await pg?.stop();
  });

  const list = (query: string) =>
    api<{ data: Process[]; nextCursor: string | null; total?: number; error?: { code: string } }>(
      node.url,
      'GET',
      `/api/processes?${query}`,
      {
        token: admin,
      },
    );

  it('gives the total of a list when asked (total=true), whatever the cursor, and only then', async () => {
    const wf = await createBoard(node.url, admin);
    const made: Process[] = [];
    for (let i = 0; i < 7; i++) made.push(await createProcess(node.url, admin, wf.id, `Card ${i}`));
    await api(node.url, 'POST', `/api/processes/${made[0]!.id}/transition`, { token: admin, body: { to: 'doing' } });

    const first = await list(`workflowId=${wf.id}&stage=todo&limit=4&total=true`);
    expect(first.status).toBe(200);
    expect(first.body.data).toHaveLength(4);
    expect(first.body.total).toBe(6);
    const second = await list(`workflowId=${wf.id}&stage=todo&limit=4&total=true&cursor=${encodeURIComponent(first.body.nextCursor!)}`);
    expect(second.body.data).toHaveLength(2);
    expect(second.body.nextCursor).toBeNull();
    expect(second.body.total).toBe(6);
    expect((await list(`workflowId=${wf.id}&stage=doing&total=true`)).body.total).toBe(1);
    expect((await list(`workflowId=${wf.id}&total=true`)).body.total).toBe(7);
    // Another tenant's processes are not counted.
    const other = await token({ sub: 'eve', tid: 'globex', role: 'admin' });
    expect(
      (await api<{ total: number }>(node.url, 'GET', `/api/processes?workflowId=${wf.id}&total=true`, { token: other })).body.total,
    ).toBe(0);

    expect(Object.keys((await list(`workflowId=${wf.id}&stage=todo`)).body)).toEqual(['data', 'nextCursor']);
    expect(Object.keys((await list(`workflowId=${wf.id}&stage=todo&total=false`)).body)).toEqual(['data', 'nextCursor']);
    const bad = await list(`workflowId=${wf.id}&total=perhaps`);
    expect(bad.status).toBe(400);
    expect(bad.body.error?.code).toBe('validation_failed');
  });

  it("answers a room's most recent events before an id, in id order, paging backwards", async () => {
    const wf: Workflow = await createBoard(node.url, admin);
    const p = await createProcess(node.url, admin, wf.id, 'History');
    const ids: number[] = [];
    for (const to of ['doing', 'todo', 'doing']) {
      const r = await api<{ data: TransitionResult }>(node.url, 'POST', `/api/processes/${p.id}/transition`, {
        token: admin,
        body: { to },
      });
      ids.push(r.body.data.event.id);
    }
    // An event of another room in between: not part of this room's history.
    await createProcess(node.url, admin, (await createBoard(node.url, admin)).id, 'Elsewhere');
    const room = encodeURIComponent(`workflow:${wf.id}`);
    const all = await api<History>(node.url, 'GET', `/api/events?room=${room}&after=0`, { token: admin });
    const roomIds = all.body.data.map((e) => e.id);
    expect(roomIds).toHaveLength(4);
    const head = roomIds[3]!;

    const page1 = await api<History>(node.url, 'GET', `/api/events?room=${room}&before=${head + 1}&limit=3`, { token: admin });
    expect(page1.status).toBe(200);
    expect(page1.body.data.map((e) => e.id)).toEqual(roomIds.slice(1));
    expect(page1.body.next).toBe(roomIds[1]);
    const page2 = await api<History>(node.url, 'GET', `/api/events?room=${room}&before=${page1.body.next}&limit=3`, { token: admin });
    expect(page2.body.data.map((e) => e.id)).toEqual(roomIds.slice(0, 1));
    expect(page2.body.next).toBeNull();
    expect(page2.body.data[0]!.type).toBe('process.created');

    const between = await api<History>(node.url, 'GET', `/api/events?room=${room}&after=${roomIds[0]}&before=${head}`, { token: admin });
    expect(between.body.data.map((e) => e.id)).toEqual(roomIds.slice(1, 3));

    // The same room rules as the forward read: another tenant's workflow is not found, a bad bound is refused.
    const eve = await token({ sub: 'eve', tid: 'globex', role: 'admin' });
    expect((await api(node.url, 'GET', `/api/events?room=${room}&before=${head + 1}`, { token: eve })).status).toBe(404);
    for (const before of ['0', '-1', 'x'])
      expect((await api(node.url, 'GET', `/api/events?room=${room}&before=${before}`, { token: admin })).status).toBe(400);
  });

  it('cuts a page of large events at about 1 MiB of data, with `next` set, forwards, backwards and in a replay', async () => {
    // 20 events of 60 kB: 1,000 such events would be one 60 MB answer. 17 fit in 1 MiB.
    const blob = 'd'.repeat(60_000);
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await api<{ data: FluxoEvent }>(node.url, 'POST', '/api/publish', {
        token: PUBLISH_KEY,
        body: { tenant: 'bigco', room: 'user:big', type: 'big', data: { i, blob } },
      });
      expect(r.status).toBe(201);
      ids.push(r.body.data.id);
    }
    const viewer = await token({ sub: 'big', tid: 'bigco', role: 'viewer' });
    const page = (query: string) => api<History>(node.url, 'GET', `/api/events?room=user:big&limit=1000&${query}`, { token: viewer });

    const first = await page('after=0');
    expect(first.body.data.map((e) => e.id)).toEqual(ids.slice(0, 17));
    expect(first.body.next).toBe(ids[16]);
    const rest = await page(`after=${first.body.next}`);
    expect(rest.body.data.map((e) => e.id)).toEqual(ids.slice(17));
    expect(rest.body.next).toBeNull();

    const newest = await page(`before=${ids[19]! + 1}`);
    expect(newest.body.data.map((e) => e.id)).toEqual(ids.slice(3));
    expect(newest.body.next).toBe(ids[3]);
    const oldest = await page(`before=${newest.body.next}`);
    expect(oldest.body.data.map((e) => e.id)).toEqual(ids.slice(0, 3));
    expect(oldest.body.next).toBeNull();

    // A reconnecting socket pages through the same log: every page says whether more follow.
    const socket = await client(node.url, { token: viewer });
    try {
      const got: number[] = [];
      let after = 0;
      for (let n = 0; n < 20; n++) {
        const ack = await request(socket, 'subscribe', { room: 'user:big', after });
        if (!('data' in ack)) throw new Error(JSON.stringify(ack));
        got.push(...ack.data.events.map((e) => e.id));
        if (!ack.data.truncated) break;
        after = ack.data.events.at(-1)!.id;
      }
      expect(got).toEqual(ids);
    } finally {
      socket.close();
    }
  });
});

describe('GET /auth/session', () => {
  let node: FluxoNode;
  let dev: FluxoNode;

  beforeAll(async () => {
    // A tight `auth` budget per IP: what a signed-in page's call costs shows in what is left.
    [node, dev] = await Promise.all([
      startNode({ RATE_LIMITS: 'auth=4/60,http:read=1000/1' }),
      // Demo sign-in is on only with the built-in development secret.
      startNode({ JWT_SECRET: '' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([node?.close(), dev?.close()]);
  });

  /** Each test calls from its own address (loopback is a trusted proxy by default), so budgets do not mix. */
  const from = (ip: string) => ({ 'x-forwarded-for': ip });
  const cookie = (n: FluxoNode, value: string, ip: string) => ({ cookie: `${n.config.cookieName}=${value}`, ...from(ip) });

  it('answers 200 whether or not anyone is signed in, saying who, or why not', async () => {
    const ip = '10.20.1.1';
    const nobody = await api(node.url, 'GET', '/auth/session', { headers: from(ip) });
    expect(nobody).toMatchObject({ status: 200, body: { data: { authenticated: false } } });
    expect(nobody.body).toEqual({ data: { authenticated: false } });

    const t = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada Lovelace' });
    const me = await api(node.url, 'GET', '/auth/session', { headers: cookie(node, t, ip) });
    expect(me).toMatchObject({
      status: 200,
      body: { data: { authenticated: true, userId: 'ada', tenant: 'acme', role: 'admin', name: 'Ada Lovelace', exp: expect.any(Number) } },
    });
    expect(me.headers.get('cache-control')).toBe('no-store');

    const forged = await token({ sub: 'ada', tid: 'acme', secret: 'some-other-secret-that-is-long-enough-for-hs256' });
    expect((await api(node.url, 'GET', '/auth/session', { headers: cookie(node, forged, ip) })).body).toEqual({
      data: { authenticated: false, reason: 'token_invalid' },
    });
    const out = await api(node.url, 'POST', '/auth/logout', { token: t, body: {}, headers: from('10.20.1.2') });
    expect(out.status).toBe(200);
    expect((await api(node.url, 'GET', '/auth/session', { headers: cookie(node, t, '10.20.1.3') })).body).toEqual({
      data: { authenticated: false, reason: 'token_revoked' },
    });
  });

  it("tells a page whether to offer demo sign-in, so that it need not probe /auth/dev-users' 404", async () => {
    expect((await api(dev.url, 'GET', '/auth/session')).body).toEqual({ data: { authenticated: false, devLogin: true } });
    expect((await api(node.url, 'GET', '/auth/session', { headers: from('10.20.2.1') })).body).not.toHaveProperty('data.devLogin');
  });

  it('costs a point of the `auth` budget unless the session verifies (then it is given back)', async () => {
    const t = await token({ sub: 'bob', tid: 'acme' });
    const signedIn = cookie(node, t, '10.20.3.1');
    for (let i = 0; i < 10; i++) expect((await api(node.url, 'GET', '/auth/session', { headers: signedIn })).status).toBe(200);
    const anonymous = from('10.20.3.2');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await api(node.url, 'GET', '/auth/session', { headers: anonymous })).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  });
});
