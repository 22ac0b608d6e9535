import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { ConfigError, loadConfig } from '../../server/config/index.js';
import { client, startNode } from '../harness/node.js';

/** MAX_HTTP_BUFFER_SIZE, PING_INTERVAL_MS, PING_TIMEOUT_MS and CONNECT_TIMEOUT_MS reach Engine.IO / Socket.IO. */
let fast: FluxoNode; // short heartbeats
let small: FluxoNode; // small frames, short connect timeout
beforeAll(async () => {
  [fast, small] = await Promise.all([
    startNode({ PING_INTERVAL_MS: '300', PING_TIMEOUT_MS: '300' }),
    startNode({ MAX_PAYLOAD_BYTES: '1024', MAX_HTTP_BUFFER_SIZE: '2048', CONNECT_TIMEOUT_MS: '500' }),
  ]);
});
afterAll(() => Promise.all([fast?.close(), small?.close()]));

interface Raw {
  ws: WebSocket;
  open: { pingInterval: number; pingTimeout: number; maxPayload: number };
  frames: string[];
  closed: Promise<{ code: number; afterMs: number }>;
}

/** A raw Engine.IO WebSocket session; answers pings only when told to. */
async function raw(node: FluxoNode, opts: { pong: boolean }): Promise<Raw> {
  const ws = new WebSocket(`${node.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const frames: string[] = [];
  let opened = 0;
  const closed = new Promise<{ code: number; afterMs: number }>((resolve) =>
    ws.once('close', (code) => resolve({ code, afterMs: Date.now() - opened })),
  );
  ws.on('error', () => {});
  const open = await new Promise<Raw['open']>((resolve, reject) => {
    ws.on('message', (data) => {
      const text = String(data);
      if (text.startsWith('0{')) resolve(JSON.parse(text.slice(1)));
      else if (text === '2') {
        if (opts.pong) ws.send('3');
      } else frames.push(text);
    });
    ws.once('close', () => reject(new Error('closed before the open packet')));
  });
  opened = Date.now();
  return { ws, open, frames, closed };
}

/** Waits (bounded) for a frame starting with `prefix`. */
async function frame(s: Raw, prefix: string): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = s.frames.find((f) => f.startsWith(prefix));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no frame ${prefix} within 5 s; got ${JSON.stringify(s.frames).slice(0, 300)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function refusals(node: FluxoNode, transport: 'http' | 'ws', limit: string): Promise<number> {
  const text = (await api<string>(node.url, 'GET', '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(`${transport}_limit_refusals_total{`) && l.includes(`limit="${limit}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('heartbeat', () => {
  it('announces PING_INTERVAL_MS and PING_TIMEOUT_MS and drops a client that stops answering pings', async () => {
    const s = await raw(fast, { pong: false });
    expect(s.open).toMatchObject({ pingInterval: 300, pingTimeout: 300 });
    s.ws.send(`40${JSON.stringify({ token: await token({ sub: 'silent', tid: 'acme' }) })}`);
    const { afterMs } = await s.closed;
    // Closed by the server at interval + timeout (600 ms), far below the 45 s of the old hard-coded values.
    expect(afterMs).toBeLessThan(5000);
  });

  it('keeps a client that answers, ping after ping', async () => {
    const c = await client(fast.url, { token: await token({ sub: 'lively', tid: 'acme' }) });
    try {
      let dropped = false;
      c.once('disconnect', () => {
        dropped = true;
      });
      // Three heartbeats (each one a ping within PING_INTERVAL_MS, answered within PING_TIMEOUT_MS).
      const pings = new Promise<void>((resolve) => {
        let n = 0;
        c.io.engine.on('ping', () => {
          if (++n === 3) resolve();
        });
      });
      await Promise.race([pings, new Promise((_, reject) => setTimeout(reject, 5000, new Error('fewer than 3 pings in 5 s')))]);
      expect(dropped).toBe(false);
      expect(c.connected).toBe(true);
    } finally {
      c.close();
    }
  });
});

describe('connect timeout', () => {
  it('closes an Engine.IO session that sends no CONNECT within CONNECT_TIMEOUT_MS', async () => {
    const s = await raw(small, { pong: true });
    const { afterMs } = await s.closed;
    expect(afterMs).toBeLessThan(5000);
  });
});

describe('MAX_HTTP_BUFFER_SIZE', () => {
  it('is announced as maxPayload and is the hard cap of one frame: over it, the WebSocket is closed and counted', async () => {
    const s = await raw(small, { pong: true });
    expect(s.open.maxPayload).toBe(2048);
    s.ws.send(`40${JSON.stringify({ token: await token({ sub: 'big', tid: 'acme' }) })}`);
    await frame(s, '40{');
    // Between MAX_PAYLOAD_BYTES and the cap: a typed ack.
    s.ws.send(`421["subscribe",{"room":"${'x'.repeat(1500)}"}]`);
    expect(await frame(s, '431')).toContain('"payload_too_large"');
    const before = await refusals(small, 'ws', 'max_http_buffer_size');
    // Over the cap: uWebSockets.js closes the connection (no close frame, so the client sees 1006).
    s.ws.send(`422["subscribe",{"room":"${'x'.repeat(3000)}"}]`);
    expect((await s.closed).code).toBe(1006);
    expect(await refusals(small, 'ws', 'max_http_buffer_size')).toBe(before + 1);
  });

  it('answers a long-polling POST over the cap with 413', async () => {
    const base = `${small.url}/socket.io/?EIO=4&transport=polling`;
    const open = await (await fetch(base)).text();
    const url = `${base}&sid=${(JSON.parse(open.slice(1)) as { sid: string }).sid}`;
    const before = await refusals(small, 'http', 'max_http_buffer_size');
    const res = await fetch(url, { method: 'POST', body: `4${'x'.repeat(3000)}` });
    expect(res.status).toBe(413);
    expect(await refusals(small, 'http', 'max_http_buffer_size')).toBe(before + 1);
  });

  it('must not be below MAX_PAYLOAD_BYTES', () => {
    expect(() => loadConfig({ MAX_PAYLOAD_BYTES: '65536', MAX_HTTP_BUFFER_SIZE: '4096' })).toThrow(ConfigError);
    expect(loadConfig({ MAX_PAYLOAD_BYTES: '2048' }).maxHttpBufferSize).toBe(8192);
  });
});
