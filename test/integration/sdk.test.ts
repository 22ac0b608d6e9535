import { type SQL, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FluxoNode } from '../../server/app.js';
import type { FluxoEvent, Process } from '../../shared/protocol.js';
import { type ConnectionStatus, connect, type FluxoClient, FluxoError } from '../../shared/sdk/index.js';
import { createBoard, createProcess } from '../harness/fixtures.js';
import { eventually, startNode, token } from '../harness/node.js';

let node: FluxoNode;
let admin: string;
let editor: string;
const clients: FluxoClient[] = [];

/** Generous budgets: these tests count deliveries, not limits (one test sets its own). */
const LIMITS = 'process:transition=10000/1,handshake=1000/1,subscribe=1000/1,http:write=1000/1,http:read=1000/1,auth:refresh=100/1';

function open(opts: Parameters<typeof connect>[0]): FluxoClient {
  const c = connect({ backoff: { initialMs: 50, maxMs: 500 }, transports: ['websocket'], ...opts });
  clients.push(c);
  return c;
}

function states(c: FluxoClient): ConnectionStatus[] {
  const seen: ConnectionStatus[] = [c.status];
  c.on('state', (s) => seen.push(s));
  return seen;
}

beforeAll(async () => {
  node = await startNode({ RATE_LIMITS: LIMITS });
  admin = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada' });
  editor = await token({ sub: 'bob', tid: 'acme', role: 'editor', name: 'Bob' });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await node?.shutdown();
});

describe('SDK: delivery', () => {
  it('delivers every event exactly once and in id order across forced disconnects while events are committed', async () => {
    const wf = await createBoard(node.url, admin);
    const procs: Process[] = [];
    for (let i = 0; i < 4; i++) procs.push(await createProcess(node.url, editor, wf.id, `Card ${i}`));

    const reader = open({ url: node.url, token: admin });
    const seen = states(reader);
    const workflowEvents: FluxoEvent[] = [];
    const tenantEvents: FluxoEvent[] = [];
    // Two rooms the same events go to: the server sends each event once per room.
    const stopWf = reader.subscribe(`workflow:${wf.id}`, (e) => workflowEvents.push(e));
    const stopTenant = reader.subscribe('tenant', (e) => tenantEvents.push(e));
    await Promise.all([stopWf.ready, stopTenant.ready]);

    const writer = open({ url: node.url, token: editor });
    await writer.whenConnected();
    const committed: number[] = [];
    const TOTAL = 200;
    const PER = TOTAL / procs.length;
    let cuts = 0;
    // Cut the reader's transport twice while the writers keep committing.
    const cutter = (async () => {
      for (const at of [60, 130]) {
        await eventually(() => expect(committed.length).toBeGreaterThanOrEqual(at), 20_000, 5);
        reader.socket.io.engine.close();
        cuts++;
      }
    })();
    await Promise.all(
      procs.map(async (p) => {
        let stage = p.stage;
        for (let i = 0; i < PER; i++) {
          const to = stage === 'todo' ? 'doing' : 'todo';
          const r = await writer.transition(p.id, to);
          committed.push(r.event.id);
          stage = to;
        }
      }),
    );
    await cutter;
    expect(cuts).toBe(2);
    expect(committed).toHaveLength(TOTAL);
    const expected = [...committed].sort((a, b) => a - b);

    // A barrier: once its event is in, anything before it (a duplicate, a straggler) has been handled.
    const barrier = await writer.transition(procs[0]!.id, procs[0]!.stage === 'todo' ? 'doing' : 'todo');
    await eventually(() => expect(workflowEvents.at(-1)?.id).toBe(barrier.event.id), 15_000);
    await eventually(() => expect(tenantEvents.at(-1)?.id).toBe(barrier.event.id), 15_000);
    expect(workflowEvents.map((e) => e.id)).toEqual([...expected, barrier.event.id]);
    expect(tenantEvents.map((e) => e.id)).toEqual([...expected, barrier.event.id]);
    // It really did reconnect (twice), going through `reconnecting`.
    expect(seen.filter((s) => s.state === 'reconnecting').length).toBeGreaterThanOrEqual(2);
    expect(seen.filter((s) => s.state === 'connected').length).toBeGreaterThanOrEqual(3);
    expect(reader.status).toMatchObject({ state: 'connected', nodeId: node.config.nodeId });
  });

  it('replays from the last id when the server sends resync, without duplicates', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    const reader = open({ url: node.url, token: admin });
    const got: number[] = [];
    const stop = reader.subscribe(`process:${p.id}`, (e) => got.push(e.id));
    await stop.ready;
    const writer = open({ url: node.url, token: editor });
    const a = await writer.transition(p.id, 'doing');
    await eventually(() => expect(got).toEqual([a.event.id]));
    // Simulate a gap: the event of the next transition is not sent live, then the server asks for a resync.
    const b = await node.store.transition({ tenant: 'acme', userId: 'bob' }, { processId: p.id, to: 'todo' });
    node.io.emit('resync', { rooms: [`process:${p.id}`] });
    await eventually(() => expect(got).toEqual([a.event.id, b.event.id]));
    const barrier = await writer.transition(p.id, 'doing');
    await eventually(() => expect(got.at(-1)).toBe(barrier.event.id));
    expect(got).toEqual([a.event.id, b.event.id, barrier.event.id]);
  });

  it('fills a gap by itself: an event past a missing one is held, the room fetched, both delivered in order', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    const reader = open({ url: node.url, token: admin, gapWaitMs: 100 });
    const got: FluxoEvent[] = [];
    const stop = reader.subscribe(`workflow:${wf.id}`, (e) => got.push(e));
    await stop.ready;
    // Committed but never published (as when Redis drops it, or the node dies before publishing)…
    const lost = await node.store.transition({ tenant: 'acme', userId: 'bob' }, { processId: p.id, to: 'doing' });
    // …then one that is published: the reader sees its offset skip one, and fetches the room.
    const writer = open({ url: node.url, token: editor });
    const next = await writer.transition(p.id, 'todo');
    await eventually(() => expect(got.map((e) => e.id)).toEqual([lost.event.id, next.event.id]));
    const room = `workflow:${wf.id}`;
    expect(got.map((e) => e.offsets[e.rooms.indexOf(room)])).toEqual([2, 3]);
    expect(reader.position(room)).toMatchObject({ offset: 3, id: next.event.id });
  });

  it('retries a subscribe whose ack never came, and one refused with store_unavailable; the room then delivers', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    const room = `process:${p.id}`;
    // The first subscribe of this room gets no answer at all, the second a retryable refusal.
    let seen = 0;
    node.io.on('connection', (socket) => {
      socket.use((packet, next) => {
        const [event, payload, ack] = packet as [string, { room?: string }, ((r: unknown) => void) | undefined];
        if (event !== 'subscribe' || payload?.room !== room) return next();
        seen++;
        if (seen === 1) return; // swallowed: the client's ack times out
        if (seen === 2) return ack?.({ error: { code: 'store_unavailable', message: 'The database is unavailable.' } });
        next();
      });
    });
    const reader = open({ url: node.url, token: admin, ackTimeoutMs: 300 });
    const errors: FluxoError[] = [];
    reader.on('error', (e) => errors.push(e));
    const got: number[] = [];
    const stop = reader.subscribe(room, (e) => got.push(e.id));
    await stop.ready;
    expect(seen).toBe(3);
    const writer = open({ url: node.url, token: editor });
    const moved = await writer.transition(p.id, 'doing');
    await eventually(() => expect(got).toEqual([moved.event.id]));
    expect(errors).toEqual([]); // two failures are retried quietly; a third would be reported
  });

  it('starts a room from `after` and stops delivering after unsubscribe', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    const writer = open({ url: node.url, token: editor });
    const first = await writer.transition(p.id, 'doing');
    const second = await writer.transition(p.id, 'todo');
    const reader = open({ url: node.url, token: admin });
    const got: number[] = [];
    const stop = reader.subscribe(`process:${p.id}`, (e) => got.push(e.id), { after: first.event.id });
    const ack = await stop.ready;
    expect(ack.events.map((e) => e.id)).toEqual([second.event.id]);
    expect(got).toEqual([second.event.id]);
    await stop();
    await writer.transition(p.id, 'doing');
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toEqual([second.event.id]);
  });
});

describe('SDK: typed errors', () => {
  it('rejects with FluxoError codes from the catalog', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    const c = open({ url: node.url, token: editor });
    const ok = await c.transition(p.id, 'doing', { expectedVersion: p.version });
    expect(ok.process).toMatchObject({ stage: 'doing', version: p.version + 1 });

    const conflict = await c.transition(p.id, 'done', { expectedVersion: p.version }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(FluxoError);
    expect(conflict).toMatchObject({ code: 'version_conflict', retryable: false });
    expect((conflict as FluxoError).body?.current).toMatchObject({ stage: 'doing', version: p.version + 1 });

    await expect(c.transition(p.id, 'nowhere')).rejects.toMatchObject({ code: 'invalid_transition' });
    const viewer = open({ url: node.url, token: await token({ sub: 'vic', tid: 'acme', role: 'viewer' }) });
    await expect(viewer.transition(p.id, 'done')).rejects.toMatchObject({ code: 'forbidden' });
    await expect(c.subscribe('workflow:missing', () => {}).ready).rejects.toMatchObject({ code: 'not_found' });
    await expect(c.subscribe('user:someone-else', () => {}).ready).rejects.toMatchObject({ code: 'forbidden' });
  });

  it('reports rate_limited with retryAfterMs', async () => {
    const limited = await startNode({ RATE_LIMITS: 'process:transition=2/60' });
    try {
      const wf = await createBoard(limited.url, admin);
      const p = await createProcess(limited.url, editor, wf.id);
      const c = open({ url: limited.url, token: editor });
      await c.transition(p.id, 'doing');
      await c.transition(p.id, 'todo');
      const err = await c.transition(p.id, 'doing').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'rate_limited', retryable: true });
      expect((err as FluxoError).retryAfterMs).toBeGreaterThan(0);
    } finally {
      await limited.shutdown();
    }
  });

  it('asks again, after a back-off, a transition answered request_in_progress, and gets the stored result', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    const c = open({ url: node.url, token: editor });
    const first = await c.transition(p.id, 'doing', { requestId: 'done-before' });
    // Another write holds 'held' (its claim is there, its result not yet)…
    const store = node.store as unknown as { query(q: SQL): Promise<unknown> };
    await store.query(sql`INSERT INTO idempotency_keys (tenant_id, request_id, result) VALUES ('acme', 'held', NULL)`);
    const pending = c.transition(p.id, 'doing', { requestId: 'held' });
    // …and stores it a moment later.
    await new Promise((r) => setTimeout(r, 20));
    await store.query(
      sql`UPDATE idempotency_keys SET result = (SELECT result FROM idempotency_keys WHERE tenant_id = 'acme' AND request_id = 'done-before') WHERE tenant_id = 'acme' AND request_id = 'held'`,
    );
    expect(await pending).toEqual({ ...first, replayed: true });
  });

  it('goes offline, without retrying, when the token is refused', async () => {
    const c = open({ url: node.url, token: 'not-a-jwt' });
    const seen = states(c);
    await eventually(() => expect(c.status).toMatchObject({ state: 'offline', retrying: false }));
    expect((c.status as { error?: FluxoError }).error?.code).toBe('token_invalid');
    expect(seen.some((s) => s.state === 'reconnecting')).toBe(false);
  });
});

describe('SDK: tokens', () => {
  it('refreshes the token through getToken when the server warns of expiry', async () => {
    // 61 s to live: the server warns a minute ahead, i.e. after about 1 s.
    const short = await token({ sub: 'bob', tid: 'acme', ttlS: 61 });
    let calls = 0;
    const c = open({
      url: node.url,
      token: short,
      getToken: async () => {
        calls++;
        return token({ sub: 'bob', tid: 'acme', ttlS: 3600 });
      },
    });
    await c.whenConnected();
    const firstExp = c.session!.exp;
    const refreshed = await new Promise<{ exp: number }>((resolve) => c.on('token', resolve));
    expect(calls).toBe(1);
    expect(refreshed.exp).toBeGreaterThan(firstExp + 3000);
    expect(c.session!.exp).toBe(refreshed.exp);
    expect(c.status.state).toBe('connected');
  });

  it('reconnects with a fresh token after the old one expired, and resumes its rooms', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    // Too short for a warning: the server disconnects at exp, the SDK fetches a token and comes back.
    const c = open({
      url: node.url,
      token: await token({ sub: 'bob', tid: 'acme', ttlS: 2 }),
      getToken: () => token({ sub: 'bob', tid: 'acme', ttlS: 3600 }),
    });
    const seen = states(c);
    const got: number[] = [];
    await c.subscribe(`process:${p.id}`, (e) => got.push(e.id)).ready;
    const writer = open({ url: node.url, token: editor });
    const a = await writer.transition(p.id, 'doing');
    await eventually(() => expect(seen.filter((s) => s.state === 'connected').length).toBe(2), 8000);
    const b = await writer.transition(p.id, 'todo');
    await eventually(() => expect(got).toEqual([a.event.id, b.event.id]));
    expect(c.session!.exp - Math.floor(Date.now() / 1000)).toBeGreaterThan(3000);
  });
});

describe('SDK: presence', () => {
  it('keeps a snapshot and emits changes: join, state, leave', async () => {
    const wf = await createBoard(node.url, admin);
    const room = `workflow:${wf.id}`;
    const a = open({ url: node.url, token: admin });
    await a.subscribe(room, () => {}).ready;
    expect(a.presence(room).map((m) => m.userId)).toEqual(['ada']);

    const b = open({ url: node.url, token: editor });
    const ackB = await b.subscribe(room, () => {}).ready;
    expect(ackB.presence.map((m) => m.userId).sort()).toEqual(['ada', 'bob']);
    await eventually(() =>
      expect(
        a
          .presence(room)
          .map((m) => m.userId)
          .sort(),
      ).toEqual(['ada', 'bob']),
    );

    await b.setPresence(room, { status: 'editing', card: 'p1' });
    await eventually(() => expect(a.presence(room).find((m) => m.userId === 'bob')?.state).toEqual({ status: 'editing', card: 'p1' }));

    // The state survives a reconnect: the SDK sends it again.
    b.socket.io.engine.close();
    await eventually(() => expect(b.status.state).toBe('connected'));
    await eventually(() => expect(a.presence(room).find((m) => m.userId === 'bob')?.state).toEqual({ status: 'editing', card: 'p1' }));

    b.close();
    await eventually(() => expect(a.presence(room).map((m) => m.userId)).toEqual(['ada']));
    expect(b.status).toMatchObject({ state: 'offline', reason: 'closed' });
  });
});
