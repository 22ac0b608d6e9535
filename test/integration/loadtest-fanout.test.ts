import uWS from 'uWebSockets.js';
import { Server } from 'socket.io';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFanout } from '../../loadtest/fanout.js';
import { IdSet } from '../../loadtest/id-set.js';
import { LeanClient } from '../../loadtest/lean-client.js';
import { fanoutHtml } from '../../loadtest/report-html.js';
import { api } from '../../scripts/topology/api.js';
import { TEST_SECRET, token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { FluxoEvent } from '../../shared/protocol.js';
import { client, collect, eventually, request, startNode } from '../harness/node.js';

const KEY = 'loadtest-publish-key-0123456789';
let node: FluxoNode;

beforeAll(async () => {
  node = await startNode({
    PUBLISH_API_KEY: KEY,
    RATE_LIMITS: 'handshake=100000/1,publish=100000/1,process:transition=100000/1,http:write=100000/1,subscribe=100000/1',
  });
});
afterAll(() => node?.close());

const publish = (tenant: string, n: number) =>
  api<{ data: FluxoEvent }>(node.url, 'POST', '/api/publish', {
    headers: { authorization: `Bearer ${KEY}` },
    body: { tenant, room: 'tenant', type: 'loadtest', data: { n } },
  });

describe('lean Socket.IO client', () => {
  it('receives the same events, acks and hello as socket.io-client', async () => {
    const t = await token({ sub: 'lean', tid: 'lean-t', role: 'viewer' });
    const reference = await client(node.url, { token: t });
    const lean = await LeanClient.connect({ url: node.url, token: t });
    try {
      const got: { name: string; args: unknown[] }[] = [];
      lean.onEvent = (name, args) => got.push({ name, args });
      const refEvents = collect(reference);
      const refAck = await request(reference, 'subscribe', { room: 'tenant' });
      const leanAck = await lean.request<{ data: { room: string } }>('subscribe', { room: 'tenant' });
      expect(leanAck).toEqual({ data: { ...(refAck as { data: object }).data, presence: expect.any(Array) } });
      for (let n = 0; n < 5; n++) expect((await publish('lean-t', n)).status).toBe(201);
      await eventually(() => {
        expect(refEvents.events).toHaveLength(5);
        expect(got.filter((e) => e.name === 'event')).toHaveLength(5);
      });
      expect(got.filter((e) => e.name === 'event').map((e) => e.args[0])).toEqual(refEvents.events);
      // An unknown event is answered with the same typed error ack.
      expect(await lean.request('nope', {})).toEqual(await request(reference, 'nope' as 'subscribe', {} as never));
    } finally {
      reference.close();
      lean.close();
    }
  });

  it('answers pings, so the server keeps it connected', async () => {
    // Fluxo pings every 25 s; a bare Socket.IO server pinging every 50 ms shows the pong within a test.
    // On uWS, like Fluxo: socket.io's attachApp patches the adapter process-wide, so a node:http server here would break.
    const app = uWS.App();
    const io = new Server({ pingInterval: 50, pingTimeout: 100, transports: ['websocket'] });
    io.attachApp(app);
    const listen = await new Promise<uWS.us_listen_socket>((resolve) => app.listen('127.0.0.1', 0, resolve));
    const port = uWS.us_socket_local_port(listen);
    let pongs = 0;
    io.engine.on('connection', (conn: { on(event: 'packet', listener: (p: { type: string }) => void): void }) =>
      conn.on('packet', (p) => {
        if (p.type === 'pong') pongs++;
      }),
    );
    const lean = await LeanClient.connect({ url: `http://127.0.0.1:${port}` });
    try {
      let closed = false;
      lean.onClose = () => {
        closed = true;
      };
      // Counted, not timed: a client that did not answer would be dropped 100 ms after the first ping.
      await eventually(() => expect(pongs).toBeGreaterThanOrEqual(5));
      expect(closed).toBe(false);
      expect(io.of('/').sockets.size).toBe(1);
    } finally {
      lean.close();
      io.close();
      uWS.us_listen_socket_close(listen);
    }
  });

  it('rejects with the server connect_error for a bad token', async () => {
    await expect(LeanClient.connect({ url: node.url, token: 'not-a-jwt' })).rejects.toMatchObject({ name: 'ConnectError' });
  });
});

describe('fan-out driver', () => {
  const base = {
    secret: TEST_SECRET,
    subscribers: 50,
    rooms: 2,
    publishers: 2,
    mode: 'publish' as const,
    publishKey: KEY,
    events: 500,
    rate: 0,
    payloadBytes: 100,
    processes: 2,
    sourceAddresses: 3,
    connectRate: 500,
  };

  it('counts every event at every subscriber: 50 subscribers, 500 events, no drops', async () => {
    const r = await runFanout({ ...base, url: node.url });
    expect(r.connect.connected).toBe(50);
    expect(r.published).toBe(500);
    // 25 subscribers per room, 250 events per room.
    expect(r.expectedDeliveries).toBe(50 * 250);
    expect(r.delivered).toBe(50 * 250);
    expect(r.missingTotal).toBe(0);
    expect(r.duplicates).toBe(0);
    expect(r.unexpected).toBe(0);
    expect(r.latencyMs.count).toBe(50 * 250);
    expect(fanoutHtml(r)).toContain('<svg');
  });

  it('reports a deliberately dropped event as missing, by id', async () => {
    const r = await runFanout({ ...base, url: node.url, subscribers: 10, events: 40, dropNth: 7, drainMs: 1000 });
    expect(r.missingTotal).toBe(1);
    expect(r.missing).toHaveLength(1);
    expect(r.missing[0]!.ids).toHaveLength(1);
    expect(r.missing[0]!.subscriber).toBe('0.0');
  });

  it('drives HTTP and socket transitions', async () => {
    for (const mode of ['http', 'socket'] as const) {
      const r = await runFanout({ ...base, url: node.url, mode, subscribers: 10, events: 40 });
      expect(r.published).toBe(40);
      expect(r.delivered).toBe(r.expectedDeliveries);
      expect(r.missingTotal).toBe(0);
    }
  });
});

describe('IdSet', () => {
  it('tells new ids from duplicates across growth and ids below the first one', () => {
    const s = new IdSet();
    expect(s.add(1000)).toBe(true);
    expect(s.add(1000)).toBe(false);
    expect(s.add(5000)).toBe(true);
    expect(s.add(999)).toBe(true);
    expect(s.add(999)).toBe(false);
    expect([s.has(999), s.has(1000), s.has(1001), s.has(5000), s.has(1)]).toEqual([true, true, false, true, false]);
    expect(s.size).toBe(3);
  });
});
