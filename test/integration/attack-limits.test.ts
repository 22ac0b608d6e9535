/**
 * Issue 10, "Why" — the limits that were not there, and the smaller gaps, against a real node
 * process (Postgres behind it) with small caps so they are reached quickly: every client event
 * metered before any work, Engine.IO sessions capped per IP before CONNECT, sockets capped per
 * user and per IP, unauthenticated HTTP metered per IP, the Engine.IO hard cap, configurable
 * heartbeats and connect timeout, `request_in_progress`, reasons sent before a server-side
 * disconnect, no version header past nginx, and `Connection: close` honoured.
 */
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx } from '../../scripts/topology/cluster.js';
import { call, freshAddress, type HostileNode, health, metric, startHostileNode, token, waitFor } from '../harness/hostile.js';
import { openSession, rawHttp, type SioClient, sioClient } from '../harness/wire.js';

const MAX_PAYLOAD = 2048;
/** MAX_HTTP_BUFFER_SIZE's default: 4 × MAX_PAYLOAD_BYTES. */
const HARD_CAP = 4 * MAX_PAYLOAD;
let node: HostileNode;
const open: SioClient[] = [];

beforeAll(async () => {
  node = await startHostileNode(
    {
      MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD),
      MAX_SOCKETS_PER_USER: '5',
      MAX_SOCKETS_PER_IP: '8',
      MAX_SESSIONS_PER_IP: '12',
      PING_INTERVAL_MS: '1000',
      PING_TIMEOUT_MS: '1000',
      CONNECT_TIMEOUT_MS: '1000',
    },
    { postgres: true, name: 'limits' },
  );
});
afterAll(async () => {
  for (const s of open) await s.close();
  await node?.stop();
});

async function connect(tok: string, from = freshAddress(), transport: 'websocket' | 'polling' = 'websocket'): Promise<SioClient> {
  const s = await sioClient(node.url, { token: tok }, { localAddress: from, transport });
  open.push(s);
  return s;
}
const codeOf = (s: SioClient) => (s.connectError as { data?: { code?: string } } | null)?.data?.code;
const reasons = (s: SioClient) =>
  s
    .events()
    .filter((e) => e.event === 'server:disconnect')
    .map((e) => (e.args[0] as { code: string }).code);

describe('every client event draws from a budget before any work', () => {
  for (const [what, frame] of [
    ['unknown events', (i: number) => `42${i}["no-such-event",{}]`],
    ['oversized messages', (i: number) => `42${i}["subscribe",{"room":"${'x'.repeat(MAX_PAYLOAD + 500)}"}]`],
    ['events without an ack', () => '42["subscribe",{"room":"tenant"}]'],
  ] as [string, (i: number) => string][]) {
    it(`meters ${what}: 400 in a burst meet rate_limited (or a cut with the reason first)`, async () => {
      const s = await connect(await token(`burst-${what.length}`, 'acme', 'viewer'));
      expect(s.connected).toBe(true);
      await s.session.send(Array.from({ length: 400 }, (_, i) => frame(i + 1)));
      await s.session.until(
        (r) => r.closed !== null || r.packets.some((p) => typeof p === 'string' && p.includes('"rate_limited"')),
        Date.now() + 15_000,
      );
      const limited = s.session.packets.some((p) => typeof p === 'string' && p.includes('"rate_limited"'));
      expect(limited || s.session.closed !== null, `400 ${what} met no limit`).toBe(true);
      if (s.session.closed !== null) expect(reasons(s)).toContain('rate_limited');
    });
  }
});

describe('connections are capped', () => {
  it('caps Engine.IO sessions per IP before any CONNECT (MAX_SESSIONS_PER_IP), with a typed 429', async () => {
    const from = freshAddress();
    const sessions = [];
    for (let i = 0; i < 12; i++) sessions.push(await openSession(i % 2 ? 'polling' : 'websocket', node.url, { localAddress: from }));
    expect(sessions.filter((s) => s.open !== null).length).toBe(12);
    for (const transport of ['polling', 'websocket'] as const) {
      const over = await openSession(transport, node.url, { localAddress: from });
      expect(over.open, `${transport}: a 13th session opened`).toBeNull();
      expect(over.closed).toMatch(/http 429 .*"rate_limited"/);
    }
    // A slot frees when a session ends.
    await sessions[0]!.close();
    await waitFor(
      async () => {
        const again = await openSession('polling', node.url, { localAddress: from });
        await again.close();
        return again.open !== null;
      },
      'a session slot to free',
      10_000,
      100,
    );
    await Promise.all(sessions.map((s) => s.close()));
  });

  it('closes a session that never sends CONNECT within CONNECT_TIMEOUT_MS, and advertises the configured heartbeat', async () => {
    const s = await openSession('websocket', node.url, { localAddress: freshAddress() });
    expect(s.open).toMatchObject({ pingInterval: 1000, pingTimeout: 1000 });
    const started = Date.now();
    await s.until((r) => r.closed !== null, Date.now() + 8000);
    expect(s.closed, 'a session that never connected is still open').not.toBeNull();
    expect(Date.now() - started).toBeLessThan(6000);
  });

  it('drops a client that stops answering pings within PING_INTERVAL_MS + PING_TIMEOUT_MS', async () => {
    const c = await sioClient(node.url, { token: await token('silent', 'acme', 'viewer') }, { localAddress: freshAddress(), pong: false });
    open.push(c);
    expect(c.connected).toBe(true);
    const started = Date.now();
    await c.session.until((r) => r.closed !== null, Date.now() + 10_000);
    expect(c.session.closed, 'a client that never answers pings is still connected').not.toBeNull();
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('caps sockets per user (MAX_SOCKETS_PER_USER), refusing one more with connect_error rate_limited, and frees the slot on disconnect', async () => {
    const tok = await token('many-tabs', 'acme', 'viewer');
    const tabs = [];
    for (let i = 0; i < 5; i++) tabs.push(await connect(tok));
    expect(tabs.every((t) => t.connected)).toBe(true);
    const sixth = await connect(tok);
    expect(sixth.connected).toBe(false);
    expect(codeOf(sixth)).toBe('rate_limited');
    await tabs[0]!.close();
    await waitFor(async () => (await connect(tok)).connected, 'a socket slot of the user to free', 10_000, 100);
  });

  it('caps sockets per IP (MAX_SOCKETS_PER_IP) across users', async () => {
    const from = freshAddress();
    const got = [];
    for (let i = 0; i < 8; i++) got.push(await connect(await token(`office-${i}`, 'acme', 'viewer'), from));
    expect(
      got.every((s) => s.connected),
      JSON.stringify(got.map((s) => s.connectError)),
    ).toBe(true);
    const ninth = await connect(await token('office-9', 'acme', 'viewer'), from);
    expect(ninth.connected).toBe(false);
    expect(codeOf(ninth)).toBe('rate_limited');
  });
});

describe('unauthenticated HTTP is metered per IP', () => {
  for (const [what, send] of [
    ['bad-token API requests', (from: string, i: number) => call(node.url, 'GET', '/api/processes', { token: `bad-${i}`, from })],
    ['sign-in attempts', (from: string, i: number) => call(node.url, 'POST', '/auth/session', { body: { token: `bad-${i}` }, from })],
    ['logouts without a token', (from: string) => call(node.url, 'POST', '/auth/logout', { from })],
  ] as [string, (from: string, i: number) => ReturnType<typeof call>][]) {
    it(`refuses ${what} past the budget with 429 rate_limited and Retry-After`, async () => {
      const from = freshAddress();
      let limited: Awaited<ReturnType<typeof call>> | null = null;
      for (let i = 0; i < 400 && !limited; i++) {
        const res = await send(from, i);
        if (res.status === 429) limited = res;
        else expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
      }
      expect(limited, `400 ${what} from one address met no limit`).not.toBeNull();
      expect(limited?.body.error?.code).toBe('rate_limited');
      expect(Number(limited?.headers['retry-after'])).toBeGreaterThan(0);
    });
  }
});

describe('the Engine.IO hard cap (MAX_HTTP_BUFFER_SIZE, default 4 × MAX_PAYLOAD_BYTES)', () => {
  it('answers a message between MAX_PAYLOAD_BYTES and the cap with a typed payload_too_large, the socket staying', async () => {
    const c = await connect(await token('big', 'acme', 'viewer'));
    const ack = await c.ask('subscribe', { room: 'x'.repeat(MAX_PAYLOAD + 100) });
    expect(ack).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(await c.ask('subscribe', { room: 'tenant' })).toMatchObject({ data: {} });
  });

  it('closes a WebSocket whose frame is over the cap, counts it, and stays up; a polling POST over it gets 413', async () => {
    // The WebSocket frame is a socket refusal, the POST an HTTP one.
    const oversized = async () =>
      (await metric(node.url, 'ws_limit_refusals_total', { limit: 'max_http_buffer_size' })) +
      (await metric(node.url, 'http_limit_refusals_total', { limit: 'max_http_buffer_size' }));
    const before = await oversized();
    const c = await connect(await token('huge', 'acme', 'viewer'));
    await c.session.send([`421["subscribe",{"room":"${'x'.repeat(HARD_CAP + 100)}"}]`]);
    await c.session.until((r) => r.closed !== null, Date.now() + 10_000);
    expect(c.session.closed).not.toBeNull();
    const p = await connect(await token('huge-polling', 'acme', 'viewer'), freshAddress(), 'polling');
    await p.session.send([`421["subscribe",{"room":"${'x'.repeat(HARD_CAP + 100)}"}]`]);
    expect(p.session.closed).toMatch(/post http 413/);
    await waitFor(async () => (await oversized()) >= before + 2, 'both refusals to be counted');
    expect((await health(node.url)).ok).toBe(true);
  });
});

describe('smaller gaps', () => {
  it('answers a request whose requestId is still in progress with 409 request_in_progress (retryable), over HTTP and the socket', async () => {
    const admin = await token('ada', 'acme', 'admin');
    const wf = await call(node.url, 'POST', '/api/workflows', {
      token: admin,
      body: { name: 'B', stages: ['todo', 'doing'], transitions: { todo: ['doing'] } },
    });
    const p = await call(node.url, 'POST', '/api/processes', {
      token: admin,
      body: { workflowId: (wf.body.data as { id: string }).id, title: 'p' },
    });
    const id = (p.body.data as { id: string }).id;
    // What another node's unfinished write leaves: the key claimed, no result yet.
    await node.sql!`INSERT INTO idempotency_keys (tenant_id, request_id, result) VALUES ('acme', 'in-flight', NULL)`;
    const res = await call(node.url, 'POST', `/api/processes/${id}/transition`, {
      token: admin,
      body: { to: 'doing', requestId: 'in-flight' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error?.code).toBe('request_in_progress');
    const c = await connect(admin);
    expect(await c.ask('process:transition', { processId: id, to: 'doing', requestId: 'in-flight' })).toMatchObject({
      error: { code: 'request_in_progress' },
    });
    const { ERRORS } = await import('../../shared/errors.js');
    expect(ERRORS.request_in_progress).toMatchObject({ status: 409, retryable: true });
  });

  it('tells a socket why before cutting it when its token expires (server:disconnect token_expired)', async () => {
    const c = await connect(await token('short', 'acme', 'viewer', { ttlS: 2 }));
    expect(c.connected).toBe(true);
    await c.session.until((r) => r.closed !== null, Date.now() + 15_000);
    expect(c.session.closed).not.toBeNull();
    expect(reasons(c)).toEqual(['token_expired']);
  });

  it('does not advertise the server software past nginx (nginx/nginx.conf as shipped)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fluxo-attack-nginx-'));
    await chmod(dir, 0o755);
    const nginx = await startNginx(dir, [`127.0.0.1:${node.port}`]);
    try {
      for (const path of ['/health', '/api/me', '/nope', '/socket.io/?EIO=4&transport=polling']) {
        const r = await rawHttp(nginx.url, { method: 'GET', target: path });
        expect(r.kind).toBe('response');
        if (r.kind === 'response') expect(Object.keys(r.headers), path).not.toContain('uwebsockets');
      }
    } finally {
      await nginx.stop();
      await rm(dir, { recursive: true, force: true });
    }
    // Straight from the node it is there (uWS offers no setting to drop it): then the shipped nginx config must hide it.
    const direct = await rawHttp(node.url, { method: 'GET', target: '/health' });
    if (direct.kind === 'response' && 'uwebsockets' in direct.headers) {
      expect(await readFile(join(import.meta.dirname, '../../nginx/nginx.conf'), 'utf8')).toMatch(/proxy_hide_header\s+uWebSockets/i);
    }
  });

  it('answers Connection: close as HTTP/1.1 requires: says so, then closes; keep-alive clients never see a hang-up', async () => {
    for (const value of ['close', 'Close', 'keep-alive, close', 'CLOSE']) {
      const r = await rawHttp(node.url, { method: 'GET', target: '/health', headers: [['Connection', value]] });
      expect(r.kind, value).toBe('response');
      if (r.kind === 'response') {
        expect(r.headers.connection?.toLowerCase(), `Connection: ${value}`).toContain('close');
      }
    }
    // A keep-alive client (Node's http Agent, as node-fetch uses) mixing in `Connection: close` requests.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 30; i++) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = request(`${node.url}/health`, { agent, headers: i % 3 === 0 ? { connection: 'close' } : {} }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end();
        });
        expect(status, `request ${i}`).toBe(200);
      }
    } finally {
      agent.destroy();
    }
  });

  it('tells its sockets why when it drains (server:disconnect not_ready), and logged nothing at error level', async () => {
    const c = await connect(await token('drained', 'acme', 'viewer'));
    expect(c.connected).toBe(true);
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
    await node.stop();
    await c.session.until((r) => r.closed !== null, Date.now() + 15_000);
    expect(c.session.closed).not.toBeNull();
    expect(c.events().map((e) => e.event)).toContain('server:reconnect');
    expect(reasons(c)).toEqual(['not_ready']);
  });
});
