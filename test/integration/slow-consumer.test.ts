import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { FluxoEvent } from '../../shared/protocol.js';
import { connect, type FluxoClient } from '../../shared/sdk/index.js';
import { client, eventually, request, startNode } from '../harness/node.js';
import { jsonOf, rawHttp, type SioClient, sioClient } from '../harness/wire.js';

/**
 * A subscriber that stops reading while its room keeps moving (a phone on a stalled link, a tab in
 * a frozen process). Its node cannot buffer without bound for it, so past WS_MAX_BACKPRESSURE_BYTES
 * something must give. What must never give is the stream: the subscriber ends with every event,
 * once and in order — also when no later event in the room shows it a gap.
 */

const KEY = 'slow-consumer-publish-key-0123456789';
let node: FluxoNode;

beforeAll(async () => {
  node = await startNode({
    PUBLISH_API_KEY: KEY,
    MAX_PAYLOAD_BYTES: String(16 * 1024 * 1024),
    WS_MAX_BACKPRESSURE_BYTES: String(256 * 1024),
    RATE_LIMITS: 'publish=1000000/1,subscribe=1000/1,handshake=1000/1',
  });
});
afterAll(() => node?.close());

/**
 * A TCP relay to the node that can stop reading from it: a client behind a stalled link. (Pausing
 * the client's own socket is not enough — `ws` resumes it whenever its parser drains.)
 */
async function stallableLink(target: string): Promise<{ url: string; stall(): void; flow(): void; close(): void }> {
  const { hostname, port } = new URL(target);
  const upstreams = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = tcpConnect(Number(port), hostname);
    upstreams.add(up);
    up.on('close', () => upstreams.delete(up));
    down.pipe(up);
    // Not `pipe`: it would resume `up` when `down` drains, which would end the stall.
    up.on('data', (chunk) => down.write(chunk));
    up.on('end', () => down.end());
    for (const s of [up, down]) s.on('error', () => (s === up ? down : up).destroy());
    down.on('close', () => up.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    stall: () => {
      for (const up of upstreams) up.pause();
    },
    flow: () => {
      for (const up of upstreams) up.resume();
    },
    close: () => {
      for (const up of upstreams) up.destroy();
      server.close();
    },
  };
}

async function publish(tenant: string, events: { type: string; data: unknown }[]): Promise<number[]> {
  const res = await api<{ data: FluxoEvent[] }>(node.url, 'POST', '/api/publish', {
    token: KEY,
    body: { events: events.map((e) => ({ tenant, room: 'tenant', ...e })) },
  });
  expect(res.status, JSON.stringify(res.body).slice(0, 200)).toBe(201);
  return res.body.data.map((e) => e.id);
}

/** How many events of this type the node has emitted to their rooms. */
async function emitted(type: string): Promise<number> {
  const { values } = await node.metrics.eventsEmitted.get();
  return values.find((v) => v.labels.type === type)?.value ?? 0;
}

/**
 * Bytes the node holds for this user's WebSocket beyond what the kernel took (uWebSockets.js's own
 * queue), or null once the socket is gone.
 */
function queuedFor(userId: string): number | null {
  for (const socket of node.io.of('/').sockets.values()) {
    if (socket.data.principal?.userId !== userId) continue;
    const ws = (socket.conn.transport as unknown as { socket?: { getBufferedAmount(): number } }).socket;
    try {
      return ws?.getBufferedAmount() ?? null;
    } catch {
      return null; // closed: uWebSockets.js refuses any call on it
    }
  }
  return null;
}

async function cutForNotReading(): Promise<number> {
  const { values } = await node.metrics.wsRefusals.get();
  return values.find((v) => v.labels.limit === 'max_backpressure')?.value ?? 0;
}

/**
 * An SDK subscriber of `tenant`'s room behind a link that can stall, already given one event (so
 * it is live), and the cut count before anything stalls.
 */
async function liveReader(tenant: string, sub: string, transport: 'websocket' | 'polling') {
  const link = await stallableLink(node.url);
  const reader: FluxoClient = connect({
    url: link.url,
    token: await token({ sub, tid: tenant, role: 'viewer' }),
    transports: [transport],
    backoff: { initialMs: 50, maxMs: 500 },
  });
  const got: number[] = [];
  await reader.subscribe('tenant', (e) => got.push(e.id)).ready;
  const published = await publish(tenant, [{ type: 'before', data: {} }]);
  await eventually(() => expect(got).toEqual(published));
  const cutBefore = await cutForNotReading();
  return {
    link,
    got,
    published,
    cutBefore,
    close: () => {
      reader.close();
      link.close();
    },
  };
}

describe('a subscriber that stops reading', () => {
  it('gets every event of the room once and in order after it reads again, with no later event to show the gap', async () => {
    const tenant = 'slowco';
    const { link, got, published, cutBefore, close } = await liveReader(tenant, 'slow', 'websocket');
    try {
      // From here its link carries nothing. Events go to its room until the kernel's buffers on the
      // way are full and the node starts queueing for it (or has cut it already); then one more
      // batch passes the node's bound, and no later event shows the subscriber a gap. (Filling the
      // kernel first makes that deterministic: while its buffers still move, a send after a lost
      // one can get through, and the gap it shows is filled from the log.)
      link.stall();
      const blob = 'x'.repeat(2_000);
      let filler = 0;
      for (let b = 0; (queuedFor('slow') ?? 1) === 0; b++) {
        expect(b, 'the kernel took 40 MB for a socket that does not read').toBeLessThan(1000);
        published.push(
          ...(await publish(
            tenant,
            Array.from({ length: 20 }, (_, i) => ({ type: 'filler', data: { b, i, blob } })),
          )),
        );
        filler += 20;
        await eventually(async () => expect(await emitted('filler')).toBe(filler));
      }
      published.push(
        ...(await publish(
          tenant,
          Array.from({ length: 200 }, (_, i) => ({ type: 'flood', data: { i, blob } })),
        )),
      );
      await eventually(async () => expect(await emitted('flood')).toBe(200));
      link.flow();

      await eventually(() => expect(got.length).toBeGreaterThanOrEqual(published.length), 60_000);
      expect(got).toEqual(published);
      expect(await cutForNotReading()).toBe(cutBefore + 1);
    } finally {
      close();
    }
  });

  it('is replayed in acks of at most half the bound, so a page and what follows it fit in its queue', async () => {
    const tenant = 'bigpages';
    const blob = 'y'.repeat(3_000);
    const stored: number[] = [];
    for (let b = 0; b < 4; b++) {
      stored.push(
        ...(await publish(
          tenant,
          Array.from({ length: 100 }, (_, i) => ({ type: 'big', data: { b, i, blob } })),
        )),
      );
    }
    const socket = await client(node.url, { token: await token({ sub: 'pager', tid: tenant, role: 'viewer' }) });
    try {
      const got: number[] = [];
      const sizes: number[] = [];
      let after = 0;
      for (let page = 0; page < 100; page++) {
        const ack = await request(socket, 'subscribe', { room: 'tenant', after });
        if (!('data' in ack)) throw new Error(JSON.stringify(ack));
        sizes.push(JSON.stringify(ack.data.events).length);
        got.push(...ack.data.events.map((e) => e.id));
        if (!ack.data.truncated) break;
        after = ack.data.events.at(-1)!.id;
      }
      expect(got).toEqual(stored);
      // 400 events of ~3 KB: ~1.2 MB in pages of at most 128 KiB (half of 256 KiB), as full as fits —
      // but for the last ack of each page the store read (~1 MiB of data: two here).
      const total = sizes.reduce((a, b) => a + b, 0);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(128 * 1024);
      expect(sizes.length).toBeGreaterThanOrEqual(Math.ceil(total / (128 * 1024)));
      expect(sizes.length).toBeLessThanOrEqual(Math.ceil(total / (128 * 1024 - 4_000)) + 1);
      expect(sizes.filter((size) => size < 128 * 1024 - 4_000).length).toBeLessThanOrEqual(2);
    } finally {
      socket.close();
    }
  });

  it('on long-polling is cut once its unpolled queue passes the bound, while a client that polls is not', async () => {
    const tenant = 'pollco';
    let polling = true;
    const open = async (sub: string, pollWhile?: () => boolean): Promise<SioClient> => {
      const c = await sioClient(
        node.url,
        { token: await token({ sub, tid: tenant, role: 'viewer' }) },
        { transport: 'polling', ...(pollWhile ? { pollWhile } : {}) },
      );
      expect(c.connected, JSON.stringify(c.connectError)).toBe(true);
      expect(await c.ask('subscribe', { room: 'tenant' })).toHaveProperty('data.room', 'tenant');
      return c;
    };
    const ids = (c: SioClient) => c.events().flatMap((e) => (e.event === 'event' ? [(e.args[0] as FluxoEvent).id] : []));
    const stalled = await open('stops-polling', () => polling);
    const healthy = await open('keeps-polling');
    try {
      // Its poll in flight returns with this event, and it sends no other.
      polling = false;
      const published = await publish(tenant, [{ type: 'before', data: {} }]);
      await eventually(() => expect(ids(stalled)).toEqual(published));
      const cutBefore = await cutForNotReading();

      // 40 events of 8 KB, one at a time, each seen by the client that polls before the next: its
      // queue never holds more than one; the other's grows past 256 KiB.
      const blob = 'p'.repeat(8_000);
      for (let i = 0; i < 40; i++) {
        published.push(...(await publish(tenant, [{ type: 'unpolled', data: { i, blob } }])));
        await eventually(() => expect(ids(healthy)).toEqual(published));
      }
      await eventually(async () => expect(await cutForNotReading()).toBe(cutBefore + 1));
      expect(healthy.session.closed).toBeNull();

      // Cut at once, not when its ping times out: its next poll finds no session.
      const res = await rawHttp(node.url, {
        method: 'GET',
        target: `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(stalled.session.open!.sid)}`,
      });
      expect(res.kind === 'response' && { status: res.status, body: jsonOf(res.body) }).toEqual({
        status: 400,
        body: { code: 1, message: 'Session ID unknown' },
      });
    } finally {
      await Promise.all([stalled.close(), healthy.close()]);
    }
  });

  it('on long-polling loses nothing by the cut: the SDK resumes from its offsets', async () => {
    const tenant = 'pollsdk';
    const { link, got, published, cutBefore, close } = await liveReader(tenant, 'slowpoll', 'polling');
    try {
      link.stall();
      const blob = 'q'.repeat(8_000);
      for (let i = 0; (await cutForNotReading()) === cutBefore; i++) {
        expect(i, 'never cut').toBeLessThan(200);
        published.push(...(await publish(tenant, [{ type: 'polled-late', data: { i, blob } }])));
        await eventually(async () => expect(await emitted('polled-late')).toBe(i + 1));
      }
      link.flow();

      await eventually(() => expect(got.length).toBeGreaterThanOrEqual(published.length), 60_000);
      expect(got).toEqual(published);
      expect(await cutForNotReading()).toBe(cutBefore + 1);
    } finally {
      close();
    }
  });
});
