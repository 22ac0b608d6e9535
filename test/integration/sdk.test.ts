import { type SQL, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { freePort } from '../../scripts/topology/ports.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { FluxoEvent, Process } from '../../shared/protocol.js';
import { type ConnectionStatus, connect, type FluxoClient, FluxoError } from '../../shared/sdk/index.js';
import { eventually, startNode } from '../harness/node.js';

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

/** The `process:transition` packets with this requestId that a client sends (SDK retries included). */
function triesOf(c: FluxoClient, requestId: string): number[] {
  const sent: number[] = [];
  c.socket.onAnyOutgoing((event: string, payload?: { requestId?: string }) => {
    if (event === 'process:transition' && payload?.requestId === requestId) sent.push(Date.now());
  });
  return sent;
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
  await node?.close();
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
    const other = await createProcess(node.url, editor, wf.id);
    const writer = open({ url: node.url, token: editor });
    const first = await writer.transition(p.id, 'doing');
    const second = await writer.transition(p.id, 'todo');
    const reader = open({ url: node.url, token: admin });
    const got: number[] = [];
    const stop = reader.subscribe(`process:${p.id}`, (e) => got.push(e.id), { after: first.event.id });
    const ack = await stop.ready;
    expect(ack.events.map((e) => e.id)).toEqual([second.event.id]);
    expect(got).toEqual([second.event.id]);
    const otherGot: number[] = [];
    await reader.subscribe(`process:${other.id}`, (e) => otherGot.push(e.id)).ready;
    await stop();
    // What reaches the socket at all, so the check is that the server stopped sending, not only that the SDK dropped it.
    const sentForP: number[] = [];
    reader.socket.on('event', (e) => {
      if (e.rooms.includes(`process:${p.id}`)) sentForP.push(e.id);
    });
    await writer.transition(p.id, 'doing');
    // Barrier: a later event on the same socket, in the room still subscribed.
    const barrier = await writer.transition(other.id, 'doing');
    await eventually(() => expect(otherGot).toEqual([barrier.event.id]));
    expect(got).toEqual([second.event.id]);
    expect(sentForP).toEqual([]);
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
      await limited.close();
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
    const tries = triesOf(c, 'held');
    const pending = c.transition(p.id, 'doing', { requestId: 'held' });
    // …and stores it once the client asked a second time, i.e. after its first try was answered request_in_progress.
    await eventually(() => expect(tries.length).toBeGreaterThanOrEqual(2));
    await store.query(
      sql`UPDATE idempotency_keys SET result = (SELECT result FROM idempotency_keys WHERE tenant_id = 'acme' AND request_id = 'done-before') WHERE tenant_id = 'acme' AND request_id = 'held'`,
    );
    expect(await pending).toEqual({ ...first, replayed: true });
    expect(tries.length).toBeGreaterThanOrEqual(2);
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
  it('refreshes the token through getToken before it expires', async () => {
    // 4 s to live: refreshed a quarter of that ahead, after about 3 s (this node's budget allows it).
    const short = await token({ sub: 'bob', tid: 'acme', ttlS: 4 });
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
    const seen = states(c);
    const refreshed = await new Promise<{ exp: number }>((resolve) => c.on('token', resolve));
    expect(calls).toBe(1);
    expect(refreshed.exp).toBeGreaterThan(firstExp + 3000);
    expect(c.session!.exp).toBe(refreshed.exp);
    expect(c.status.state).toBe('connected');
    expect(seen.filter((s) => s.state !== 'connected')).toEqual([]);
  });

  it("does not refresh on every server warning: a 61 s token is refreshed on the SDK's schedule", async () => {
    // The server warns a minute ahead, i.e. after about 1 s. Refreshing on each warning with tokens
    // living 61–70 s meant a refresh every 1–10 s, until `auth:refresh` was rate-limited.
    let calls = 0;
    const c = open({
      url: node.url,
      token: await token({ sub: 'bob', tid: 'acme', ttlS: 61 }),
      getToken: async () => {
        calls++;
        return token({ sub: 'bob', tid: 'acme', ttlS: 61 });
      },
    });
    await c.whenConnected();
    // Registered after the SDK's own listener: by the time this one runs, the SDK has acted on it.
    await new Promise<void>((resolve) => c.socket.once('auth:expiring', () => resolve()));
    expect(calls).toBe(0);
    const exp = c.session!.exp * 1000;
    // Due a quarter of the lifetime ahead (~15 s before exp), not now.
    expect(c.nextRefreshAt).toBeGreaterThan(exp - 20_000);
    expect(c.nextRefreshAt).toBeLessThan(exp - 10_000);
  });

  it("never refreshes more often than the server's auth:refresh budget, and keeps the session", async () => {
    // 1 refresh per 9 s: the SDK keeps 9.9 s between two. Tokens of 12 s (11–12 s left when minted:
    // exp is in whole seconds) would be due after at most 9 s by their lifetime alone, so only the
    // budget can explain gaps of 9.9 s, and each refresh still lands 1 s or more before the previous
    // token expires (with 4 s tokens and a 3.3 s gap that margin was 0–0.7 s, lost at load 9).
    const BUDGET_GAP_MS = 9_900;
    const tight = await startNode({ RATE_LIMITS: 'auth:refresh=1/9,handshake=1000/1' });
    try {
      const received: number[] = [];
      tight.io.on('connection', (socket) =>
        socket.use((packet, next) => {
          if (packet[0] === 'auth:refresh') received.push(Date.now());
          next();
        }),
      );
      const c = open({
        url: tight.url,
        // The first token is short, so the first refresh comes early and the test waits for two gaps only.
        token: await token({ sub: 'bob', tid: 'acme', ttlS: 2 }),
        getToken: () => token({ sub: 'bob', tid: 'acme', ttlS: 12 }),
      });
      const seen = states(c);
      const errors: FluxoError[] = [];
      c.on('error', (e) => errors.push(e));
      await c.whenConnected();
      await eventually(() => expect(received.length).toBeGreaterThanOrEqual(3), 40_000, 50);
      // The server's timestamps are taken on arrival, after the SDK's: a little earlier than its own clock saw.
      const SLACK_MS = 200;
      for (let i = 1; i < received.length; i++) expect(received[i]! - received[i - 1]!).toBeGreaterThanOrEqual(BUDGET_GAP_MS - SLACK_MS);
      expect(errors).toEqual([]);
      // Each refresh came before the token expired: the connection was never dropped.
      expect(seen.filter((s) => s.state !== 'connected' && s.state !== 'connecting')).toEqual([]);
      expect(c.status.state).toBe('connected');
      c.close();
    } finally {
      await tight.close();
    }
  });

  it('reconnects with a fresh token after the old one expired, and resumes its rooms', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    // Its refreshes go unanswered (a laptop asleep, a stuck node): the server disconnects at exp,
    // the SDK fetches a token and comes back.
    node.io.on('connection', (socket) =>
      socket.use((packet, next) => {
        if (!(packet[0] === 'auth:refresh' && socket.data.principal.userId === 'sleeper')) next();
      }),
    );
    const c = open({
      url: node.url,
      token: await token({ sub: 'sleeper', tid: 'acme', ttlS: 2 }),
      getToken: () => token({ sub: 'sleeper', tid: 'acme', ttlS: 3600 }),
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

/** Settles with `p`, or fails after `ms` saying what never settled. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

describe('SDK: never gives up while recovery is possible', () => {
  /** Handshakes refused with origin_not_allowed (for test users only), by the transport they came over. */
  const refused: Record<string, string[]> = {};
  beforeAll(() => {
    node.io.use((socket, next) => {
      const user = socket.data.principal?.userId ?? '';
      const transport = socket.conn.transport.name;
      const refuse = (user === 'ws-refused' && transport === 'websocket') || user === 'all-refused';
      if (!refuse) return next();
      refused[user] = [...(refused[user] ?? []), transport];
      next(Object.assign(new Error('This origin may not use the session cookie.'), { data: { code: 'origin_not_allowed', message: 'x' } }));
    });
  });

  it('tries the other transport when one is refused with origin_not_allowed', async () => {
    const c = open({ url: node.url, token: await token({ sub: 'ws-refused', tid: 'acme' }), transports: ['websocket', 'polling'] });
    await within(c.whenConnected(), 5000, 'whenConnected');
    expect(refused['ws-refused']).toEqual(['websocket']);
    expect(c.session?.userId).toBe('ws-refused');
  });

  it('gives up with the reason once every transport was refused, and says so to waiting calls at once', async () => {
    const c = open({ url: node.url, token: await token({ sub: 'all-refused', tid: 'acme' }), transports: ['websocket', 'polling'] });
    const seen = states(c);
    const waiting = c.whenConnected().catch((e: unknown) => e);
    await eventually(() => expect(c.status).toMatchObject({ state: 'offline', reason: 'origin_not_allowed', retrying: false }));
    expect(refused['all-refused']).toEqual(['websocket', 'polling']);
    expect((c.status as { error?: FluxoError }).error?.code).toBe('origin_not_allowed');
    expect(seen.filter((s) => s.state === 'offline')).toHaveLength(1);
    expect(await within(waiting, 1000, 'whenConnected')).toMatchObject({ code: 'offline', retryable: false });
    const err = await within(
      c.transition('p', 'doing').catch((e: unknown) => e),
      1000,
      'transition',
    );
    expect(err).toMatchObject({ code: 'offline', retryable: false, cause: { code: 'origin_not_allowed' } });
  });

  it('settles a transition made once the client is offline for good (revoked): offline, with the cause', async () => {
    const t = await token({ sub: 'revoked-user', tid: 'acme' });
    const c = open({ url: node.url, token: t });
    await c.whenConnected();
    await api(node.url, 'POST', '/auth/logout', { token: t });
    await eventually(() => expect(c.status).toMatchObject({ state: 'offline', reason: 'token_revoked', retrying: false }));
    const err = await within(
      c.transition('p', 'doing').catch((e: unknown) => e),
      2000,
      'transition',
    );
    expect(err).toBeInstanceOf(FluxoError);
    expect(err).toMatchObject({ code: 'offline', retryable: false, cause: { code: 'token_revoked' } });
  });

  it('makes a call made while the server is unreachable wait at most offlineTimeoutMs, then reject with offline (retryable)', async () => {
    const port = await freePort(); // nothing listens there
    const c = open({ url: `http://127.0.0.1:${port}`, token: editor, offlineTimeoutMs: 300 });
    const started = Date.now();
    const err = await within(
      c.transition('p', 'doing').catch((e: unknown) => e),
      3000,
      'transition',
    );
    expect(err).toMatchObject({ code: 'offline', retryable: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(c.status.state === 'reconnecting' || (c.status.state === 'offline' && c.status.retrying)).toBe(true);
  });

  it('lets calls made during a reconnect wait for it: presence is applied, the transition goes through', async () => {
    const wf = await createBoard(node.url, admin);
    const p = await createProcess(node.url, editor, wf.id);
    const room = `workflow:${wf.id}`;
    const watcher = open({ url: node.url, token: admin });
    await watcher.subscribe(room, () => {}).ready;
    const b = open({ url: node.url, token: editor });
    await b.subscribe(room, () => {}).ready;
    b.socket.io.engine.close();
    expect(b.status.state).not.toBe('connected');
    await within(b.setPresence(room, { status: 'editing', card: p.id }), 5000, 'setPresence');
    const moved = await within(b.transition(p.id, 'doing'), 5000, 'transition');
    expect(moved.process.stage).toBe('doing');
    await eventually(() =>
      expect(watcher.presence(room).find((m) => m.userId === 'bob')?.state).toEqual({ status: 'editing', card: p.id }),
    );
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

describe('SDK: presence of a room over PRESENCE_MAX_CONNECTIONS', () => {
  let small: FluxoNode;
  beforeAll(async () => {
    small = await startNode({ RATE_LIMITS: LIMITS, PRESENCE_MAX_CONNECTIONS: '2' });
  });
  afterAll(async () => {
    await small?.close();
  });

  it('gives the count instead of a list over the bound, drops a list that went over, and has it whole again after a resubscribe', async () => {
    const as = async (sub: string) => {
      const c = open({ url: small.url, token: await token({ sub, tid: 'acme', role: 'editor' }) });
      const ack = await c.subscribe('tenant', () => {}).ready;
      return { c, ack };
    };
    const { c: a } = await as('ada');
    const { c: b } = await as('bob');
    await eventually(() => expect(a.presenceCount('tenant')).toBe(2));
    expect(a.presenceTruncated('tenant')).toBe(false);
    const changes: { count: number; truncated: boolean }[] = [];
    a.on('presence', ({ count, truncated }) => changes.push({ count, truncated }));

    const { c: cy, ack } = await as('cy');
    expect(ack).toMatchObject({ presence: [], presenceCount: 3, presenceTruncated: true });
    expect([cy.presence('tenant'), cy.presenceCount('tenant'), cy.presenceTruncated('tenant')]).toEqual([[], 3, true]);
    // Ada's list stops being kept: dropped, not left stale.
    await eventually(() => expect(a.presenceTruncated('tenant')).toBe(true));
    expect([a.presence('tenant'), a.presenceCount('tenant')]).toEqual([[], 3]);
    expect(changes).toContainEqual({ count: 3, truncated: true });

    // Back under the bound: diffs resume, the list holds only who changed since — still not the room's.
    cy.close();
    await eventually(() => expect(a.presenceCount('tenant')).toBe(2));
    await b.setPresence('tenant', { status: 'editing' });
    await eventually(() => expect(a.presence('tenant').map((m) => m.userId)).toEqual(['bob']));
    expect(a.presenceTruncated('tenant')).toBe(true);

    // The next subscribe (here after a reconnect) brings the whole list.
    a.socket.io.engine.close();
    await eventually(() => expect(a.presenceTruncated('tenant')).toBe(false));
    expect(
      a
        .presence('tenant')
        .map((m) => m.userId)
        .sort(),
    ).toEqual(['ada', 'bob']);
    expect(a.presenceCount('tenant')).toBe(2);
  });
});
