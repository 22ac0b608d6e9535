import { io as connect } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { FluxoEvent, TransitionResult } from '../../shared/protocol.js';
import { type Client, client, collect, eventually, request, startNode } from '../harness/node.js';

let node: FluxoNode;
let admin: string;
let editor: string;
let foreign: string;

beforeAll(async () => {
  node = await startNode();
  admin = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada' });
  editor = await token({ sub: 'bob', tid: 'acme', role: 'editor' });
  foreign = await token({ sub: 'eve', tid: 'globex', role: 'admin' });
});
afterAll(() => node?.close());

describe('real-time delivery', () => {
  it('delivers an HTTP transition to subscribers of the tenant, and never to another tenant', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, editor, wf.id);
    const watcher = await client(node.url, { token: admin });
    const outsider = await client(node.url, { token: foreign });
    try {
      const seen = collect(watcher);
      const leaked = collect(outsider);
      expect(await request(watcher, 'subscribe', { room: 'tenant' })).toMatchObject({ data: { room: 'tenant' } });
      expect(await request(outsider, 'subscribe', { room: 'tenant' })).toMatchObject({ data: { room: 'tenant' } });
      // A foreign tenant's process does not exist as far as globex is concerned.
      expect(await request(outsider, 'subscribe', { room: `process:${proc.id}` })).toMatchObject({ error: { code: 'not_found' } });

      const res = await api<{ data: TransitionResult }>(node.url, 'POST', `/api/processes/${proc.id}/transition`, {
        token: editor,
        body: { to: 'doing', expectedVersion: proc.version },
      });
      expect(res.status).toBe(200);
      expect(res.body.data.process.stage).toBe('doing');

      await eventually(() => expect(seen.events.map((e) => e.id)).toContain(res.body.data.event.id));
      const ev = seen.events.find((e) => e.id === res.body.data.event.id)!;
      expect(ev).toMatchObject({
        type: 'process.transitioned',
        processId: proc.id,
        workflowId: wf.id,
        fromStage: 'todo',
        toStage: 'doing',
        actor: 'bob',
      });
      expect(ev.rooms).toEqual(expect.arrayContaining(['tenant', `workflow:${wf.id}`, `process:${proc.id}`]));
      // Barrier: an event of globex's own, committed after acme's was delivered, on the outsider's
      // socket. Once it is in, a leak of acme's event (emitted earlier) would be in too.
      const globexBoard = await createBoard(node.url, foreign);
      const barrier = await createProcess(node.url, foreign, globexBoard.id);
      await eventually(() => expect(leaked.events.map((e) => e.processId)).toContain(barrier.id));
      expect(leaked.events.map((e) => [e.type, e.processId])).toEqual([['process.created', barrier.id]]);
    } finally {
      watcher.close();
      outsider.close();
    }
  });

  it('answers a stale expectedVersion with 409 and the current state', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, editor, wf.id);
    const first = await api(node.url, 'POST', `/api/processes/${proc.id}/transition`, {
      token: editor,
      body: { to: 'doing', expectedVersion: proc.version },
    });
    expect(first.status).toBe(200);
    const stale = await api<{ error: { code: string; current: { version: number; stage: string } } }>(
      node.url,
      'POST',
      `/api/processes/${proc.id}/transition`,
      { token: editor, body: { to: 'done', expectedVersion: proc.version } },
    );
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('version_conflict');
    expect(stale.body.error.current).toMatchObject({ version: proc.version + 1, stage: 'doing' });
  });

  it('makes a transition idempotent by requestId: same result, one event, sent again with the same offset', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, editor, wf.id);
    const watcher = await client(node.url, { token: admin });
    try {
      const seen = collect(watcher);
      await request(watcher, 'subscribe', { room: `process:${proc.id}` });
      const move = (body: object) =>
        api<{ data: TransitionResult }>(node.url, 'POST', `/api/processes/${proc.id}/transition`, { token: editor, body });
      const body = { to: 'doing', requestId: `req-${proc.id}` };
      const a = await move(body);
      const b = await move(body);
      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      expect(b.body.data.event.id).toBe(a.body.data.event.id);
      expect(b.body.data.replayed).toBe(true);
      const log = await api<{ data: FluxoEvent[] }>(node.url, 'GET', `/api/events?room=process:${proc.id}&after=0`, { token: editor });
      expect(log.body.data.filter((e) => e.type === 'process.transitioned')).toHaveLength(1);
      // The replay sent the event again (its first node may have died before sending it), as a
      // repeat of the same offset; a barrier (the next move) shows nothing else came.
      const barrier = await move({ to: 'todo' });
      await eventually(() => expect(seen.events.map((e) => e.id)).toContain(barrier.body.data.event.id));
      const id = a.body.data.event.id;
      expect(seen.events.map((e) => e.id)).toEqual([id, id, barrier.body.data.event.id]);
      expect(seen.events[1]!.offsets).toEqual(seen.events[0]!.offsets);
    } finally {
      watcher.close();
    }
  });

  it('refuses a transition the workflow does not allow with 422 invalid_transition', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, editor, wf.id);
    const res = await api<{ error: { code: string } }>(node.url, 'POST', `/api/processes/${proc.id}/transition`, {
      token: editor,
      body: { to: 'done' },
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('invalid_transition');
  });

  it('transitions over the socket with a typed ack, and a viewer is forbidden', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, editor, wf.id);
    const socket = await client(node.url, { token: editor });
    const viewer = await client(node.url, { token: await token({ sub: 'vic', tid: 'acme', role: 'viewer' }) });
    try {
      expect(await request(viewer, 'process:transition', { processId: proc.id, to: 'doing' })).toMatchObject({
        error: { code: 'forbidden' },
      });
      const ack = await request(socket, 'process:transition', { processId: proc.id, to: 'doing', expectedVersion: proc.version });
      expect(ack).toMatchObject({ data: { process: { stage: 'doing', version: proc.version + 1 }, replayed: false } });
      expect(await request(socket, 'process:transition', { processId: proc.id, to: 'todo', expectedVersion: proc.version })).toMatchObject({
        error: { code: 'version_conflict' },
      });
    } finally {
      socket.close();
      viewer.close();
    }
  });

  it('replays stored events after a given id before live ones', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, editor, wf.id);
    const ids: number[] = [];
    for (const to of ['doing', 'todo', 'doing', 'done']) {
      const r = await api<{ data: TransitionResult }>(node.url, 'POST', `/api/processes/${proc.id}/transition`, {
        token: editor,
        body: { to },
      });
      expect(r.status).toBe(200);
      ids.push(r.body.data.event.id);
    }
    const socket = await client(node.url, { token: editor });
    try {
      const ack = await request(socket, 'subscribe', { room: `process:${proc.id}`, after: ids[0]! });
      if (!('data' in ack)) throw new Error(JSON.stringify(ack));
      expect(ack.data.events.map((e) => e.id)).toEqual(ids.slice(1));
      expect(ack.data.truncated).toBe(false);
      const http = await api<{ data: FluxoEvent[] }>(node.url, 'GET', `/api/events?room=process:${proc.id}&after=${ids[1]}&limit=1`, {
        token: editor,
      });
      expect(http.body.data.map((e) => e.id)).toEqual([ids[2]]);
    } finally {
      socket.close();
    }
  });

  it('falls back to HTTP long-polling and still delivers', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, editor, wf.id);
    const polling = await client(node.url, { token: editor, transports: ['polling'] });
    try {
      expect(polling.io.engine.transport.name).toBe('polling');
      const seen = collect(polling);
      await request(polling, 'subscribe', { room: `process:${proc.id}` });
      const ack = await request(polling, 'process:transition', { processId: proc.id, to: 'doing' });
      expect(ack).toMatchObject({ data: { process: { stage: 'doing' } } });
      await eventually(() => expect(seen.events.map((e) => e.toStage)).toContain('doing'));
    } finally {
      polling.close();
    }
  });

  it("opens on long-polling, upgrades to WebSocket (socket.io-client's default transports) and delivers after the upgrade", async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, editor, wf.id);
    const socket: Client = connect(node.url, {
      transports: ['polling', 'websocket'],
      reconnection: false,
      forceNew: true,
      auth: { token: editor },
    });
    // Engine.IO's upgrade over uWS (attachApp): the session opens on polling, then its WebSocket probe takes over, same sid.
    const opened = new Promise<{ transport: string; sid: string; upgradedTo: Promise<string> }>((resolve) => {
      socket.io.once('open', () => {
        const { engine } = socket.io;
        resolve({
          transport: engine.transport.name,
          sid: engine.id ?? '',
          upgradedTo: new Promise((up) => engine.once('upgrade', (t: { name: string }) => up(t.name))),
        });
      });
    });
    try {
      const open = await opened;
      expect(open.transport).toBe('polling');
      expect(await open.upgradedTo).toBe('websocket');
      expect(socket.io.engine.id).toBe(open.sid);
      if (!socket.connected) await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      const seen = collect(socket);
      await request(socket, 'subscribe', { room: `process:${proc.id}` });
      const ack = await request(socket, 'process:transition', { processId: proc.id, to: 'doing' });
      expect(ack).toMatchObject({ data: { process: { stage: 'doing' } } });
      await eventually(() => expect(seen.events.map((e) => e.toStage)).toContain('doing'));
    } finally {
      socket.close();
    }
  });

  it('lets another backend publish a custom event with the publish API key', async () => {
    const n = await startNode({ PUBLISH_API_KEY: 'publish-key-0123456789' });
    const watcher = await client(n.url, { token: editor });
    try {
      const seen = collect(watcher);
      await request(watcher, 'subscribe', { room: 'user:bob' });
      const denied = await api(n.url, 'POST', '/api/publish', {
        token: 'wrong-key-0123456789',
        body: { tenant: 'acme', room: 'user:bob', type: 'note', data: {} },
      });
      expect(denied.status).toBe(401);
      const ok = await api<{ data: FluxoEvent }>(n.url, 'POST', '/api/publish', {
        token: 'publish-key-0123456789',
        body: { tenant: 'acme', room: 'user:bob', type: 'note', data: { text: 'hi' } },
      });
      expect(ok.status).toBe(201);
      await eventually(() =>
        expect(seen.events).toEqual([expect.objectContaining({ id: ok.body.data.id, type: 'note', data: { text: 'hi' } })]),
      );
      // Someone else's user room is not subscribable.
      expect(await request(watcher, 'subscribe', { room: 'user:ada' })).toMatchObject({ error: { code: 'forbidden' } });

      // A batch: one call, consecutive ids in the order given, each delivered once.
      const batch = await api<{ data: FluxoEvent[] }>(n.url, 'POST', '/api/publish', {
        token: 'publish-key-0123456789',
        body: { events: [1, 2, 3].map((k) => ({ tenant: 'acme', room: 'user:bob', type: 'note', data: { k } })) },
      });
      expect(batch.status).toBe(201);
      const ids = batch.body.data.map((e) => e.id);
      expect(ids).toEqual([ok.body.data.id + 1, ok.body.data.id + 2, ok.body.data.id + 3]);
      await eventually(() => expect(seen.events.map((e) => e.id)).toEqual([ok.body.data.id, ...ids]));
      expect(seen.events.slice(1).map((e) => e.data)).toEqual([{ k: 1 }, { k: 2 }, { k: 3 }]);

      // Bad batches are refused whole, with the failing field named.
      const bad = await api<{ error: { code: string; issues: { path: string }[] } }>(n.url, 'POST', '/api/publish', {
        token: 'publish-key-0123456789',
        body: {
          events: [
            { tenant: 'acme', room: 'user:bob', type: 'note', data: {} },
            { tenant: 'acme', room: 'user:bob', type: 'bad type!' },
          ],
        },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.issues[0]?.path).toBe('events.1.type');
      const empty = await api(n.url, 'POST', '/api/publish', { token: 'publish-key-0123456789', body: { events: [] } });
      expect(empty.status).toBe(400);
      const badRoom = await api<{ error: { code: string } }>(n.url, 'POST', '/api/publish', {
        token: 'publish-key-0123456789',
        body: {
          events: [
            { tenant: 'acme', room: 'user:bob', type: 'a' },
            { tenant: 'acme', room: 'nowhere', type: 'a' },
          ],
        },
      });
      expect(badRoom.body.error.code).toBe('invalid_room');
      // A batch names the event even when it is the only one; a single event is not a batch.
      const badOne = await api<{ error: { code: string; message: string } }>(n.url, 'POST', '/api/publish', {
        token: 'publish-key-0123456789',
        body: { events: [{ tenant: 'acme', room: 'nowhere', type: 'a' }] },
      });
      expect(badOne.body.error).toMatchObject({ code: 'invalid_room', message: 'events.0.room is not a room.' });
      const badSingle = await api<{ error: { code: string; message: string } }>(n.url, 'POST', '/api/publish', {
        token: 'publish-key-0123456789',
        body: { tenant: 'acme', room: 'nowhere', type: 'a' },
      });
      expect(badSingle.body.error.code).toBe('invalid_room');
      expect(badSingle.body.error.message).not.toContain('events.');
      // Postgres cannot store U+0000: refused up front as a validation error, not a failed write.
      const nul = await api<{ error: { code: string; issues: { path: string }[] } }>(n.url, 'POST', '/api/publish', {
        token: 'publish-key-0123456789',
        body: { tenant: 'acme', room: 'user:bob', type: 'note', data: { text: 'a\u0000b' } },
      });
      expect(nul.status).toBe(400);
      expect(nul.body.error.issues[0]?.path).toBe('data.text');
      const after = await api<{ data: FluxoEvent[] }>(n.url, 'GET', `/api/events?room=user:bob&after=${ids[2]}`, { token: editor });
      expect(after.body.data).toEqual([]);
    } finally {
      watcher.close();
      await n.close();
    }
  });

  it('makes a publish idempotent by requestId: a retry gets the same events back, written once and sent again', async () => {
    const n = await startNode({ PUBLISH_API_KEY: 'publish-key-0123456789' });
    const watcher = await client(n.url, { token: editor });
    const other = await client(n.url, { token: foreign });
    const publish = (body: object) =>
      api<{ data: FluxoEvent | FluxoEvent[]; replayed: boolean }>(n.url, 'POST', '/api/publish', { token: 'publish-key-0123456789', body });
    try {
      const seen = collect(watcher);
      const seenOther = collect(other);
      await request(watcher, 'subscribe', { room: 'tenant' });
      await request(other, 'subscribe', { room: 'tenant' });
      const one = { tenant: 'acme', room: 'tenant', type: 'note', data: { k: 1 }, requestId: 'pub-one' };
      const first = await publish(one);
      const retry = await publish(one);
      expect([first.status, retry.status]).toEqual([201, 201]);
      expect([first.body.replayed, retry.body.replayed]).toEqual([false, true]);
      expect(retry.body.data).toEqual(first.body.data);
      // A batch over two tenants, named once: each tenant's part is claimed under the id in that tenant.
      const batch = {
        requestId: 'pub-batch',
        events: [
          { tenant: 'acme', room: 'tenant', type: 'note', data: { k: 2 } },
          { tenant: 'globex', room: 'tenant', type: 'note', data: { k: 3 } },
          { tenant: 'acme', room: 'tenant', type: 'note', data: { k: 4 } },
        ],
      };
      const b1 = await publish(batch);
      const b2 = await publish(batch);
      expect([b1.body.replayed, b2.body.replayed]).toEqual([false, true]);
      expect(b2.body.data).toEqual(b1.body.data);
      // The id is the request's, not the events': a publish with it but other content is answered the first result.
      const reused = await publish({ ...one, data: { k: 99 } });
      expect(reused.body).toEqual({ data: first.body.data, replayed: true });
      // Barrier: an event published after all of them; once it arrived, anything sent twice would have too.
      const barrier = await publish({ tenant: 'acme', room: 'tenant', type: 'barrier', data: {} });
      const barrierId = (barrier.body.data as FluxoEvent).id;
      await eventually(() => expect(seen.events.map((e) => e.id)).toContain(barrierId));
      const [e2, e3, e4] = b1.body.data as FluxoEvent[];
      const f = (first.body.data as FluxoEvent).id;
      // Each replay sends its events again (the first node may have died before sending them)…
      expect(seen.events.map((e) => e.id)).toEqual([f, f, e2!.id, e4!.id, e2!.id, e4!.id, f, barrierId]);
      // …as repeats of the same offsets, which a subscriber drops (protocol.ts, rule 2): what is left is each event once.
      let position = 0;
      const applied = seen.events.filter((e) => {
        const offset = e.offsets[e.rooms.indexOf('tenant')]!;
        if (offset <= position) return false;
        position = offset;
        return true;
      });
      expect(applied.map((e) => e.id)).toEqual([f, e2!.id, e4!.id, barrierId]);
      // The other tenant's part went to its own subscriber, once (its own barrier: ids are per tenant).
      const otherBarrier = await publish({ tenant: 'globex', room: 'tenant', type: 'barrier', data: {} });
      const otherBarrierId = (otherBarrier.body.data as FluxoEvent).id;
      await eventually(() => expect(seenOther.events.map((e) => e.id)).toContain(otherBarrierId));
      expect(seenOther.events.map((e) => e.id)).toEqual([e3!.id, e3!.id, otherBarrierId]);
      const log = await api<{ data: FluxoEvent[] }>(n.url, 'GET', '/api/events?room=tenant&after=0', { token: editor });
      expect(log.body.data.filter((e) => e.type === 'note').map((e) => e.data)).toEqual([{ k: 1 }, { k: 2 }, { k: 4 }]);
    } finally {
      watcher.close();
      other.close();
      await n.close();
    }
  });
});
