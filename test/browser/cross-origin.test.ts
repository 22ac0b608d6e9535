import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { freePort } from '../../scripts/topology/ports.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { Process, Workflow } from '../../shared/protocol.js';
import { startNode } from '../harness/node.js';
import { launchChromium } from './harness.js';

/**
 * A web app served from another origin (ALLOWED_ORIGINS) uses Fluxo from Chromium: `fetch` with a
 * bearer token (preflighted) and with the session cookie, and socket.io-client with its default
 * transports (long-polling first, then the WebSocket upgrade). A page of an origin not in the list,
 * on the same host (same site: the SameSite=Lax cookie is sent with its requests), gets nothing:
 * no readable answer, no socket on any transport, no write.
 */

const SIO = resolve(import.meta.dirname, '../../node_modules/socket.io-client/dist/socket.io.min.js');

let node: FluxoNode;
let browser: Browser;
let context: BrowserContext;
let app: { server: Server; origin: string };
let foreign: { server: Server; origin: string };
let wf: Workflow;
let proc: Process;
let adminToken: string;
let bobToken: string;

/** A static page on its own port with socket.io-client's browser bundle. */
async function pageServer(): Promise<{ server: Server; origin: string }> {
  const port = await freePort();
  const sio = await readFile(SIO);
  const server = createServer((req, res) => {
    if (req.url === '/socket.io.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(sio);
    } else if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>another app</title><script src="/socket.io.min.js"></script><p>app</p>');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${port}` };
}

async function pageAt(origin: string): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => typeof (window as unknown as { io?: unknown }).io === 'function');
  return page;
}

interface SocketOutcome {
  hello?: { userId: string; tenant: string };
  error?: string;
  transports: string[];
  subscribed?: unknown;
}

/**
 * In the page: `io(url, opts)` (socket.io-client's defaults unless `opts` says otherwise) until
 * `hello` or `connect_error`, then a subscribe over it; bounded by `ms`.
 */
function socketFrom(page: Page, url: string, opts: Record<string, unknown>, room: string | null, ms = 8000): Promise<SocketOutcome> {
  return page.evaluate(
    ({ url, opts, room, ms }) =>
      new Promise<SocketOutcome>((resolve) => {
        // socket.io-client's browser bundle, loaded by the page: typed as much as used here.
        type Emitter = { on(event: string, fn: (...args: never[]) => void): void };
        type Engine = Emitter & { transport: { name: string } };
        type Sock = Emitter & { io: Emitter & { engine: Engine }; emit(event: string, ...args: unknown[]): void; close(): void };
        const io = (window as unknown as { io: (u: string, o: unknown) => Sock }).io;
        const socket = io(url, { reconnection: false, forceNew: true, ...opts });
        const out: SocketOutcome = { transports: [] };
        const done = () => {
          clearTimeout(timer);
          socket.close();
          resolve(out);
        };
        const timer = setTimeout(() => {
          out.error ??= 'timeout';
          done();
        }, ms);
        socket.io.on('open', () => {
          out.transports.push(socket.io.engine.transport.name);
          socket.io.engine.on('upgrade', (t: { name: string }) => out.transports.push(t.name));
        });
        socket.on('connect_error', (err: Error & { data?: { code?: string } }) => {
          out.error = err.data?.code ?? err.message;
          done();
        });
        socket.on('hello', (h: { userId: string; tenant: string }) => {
          out.hello = { userId: h.userId, tenant: h.tenant };
          if (!room) return done();
          socket.emit('subscribe', { room }, (ack: unknown) => {
            out.subscribed = ack;
            // Then the WebSocket upgrade, or 2 s without it.
            if (out.transports.includes('websocket')) return done();
            socket.io.engine.on('upgrade', () => setTimeout(done));
            setTimeout(done, 2000);
          });
        });
      }),
    { url, opts, room, ms },
  );
}

interface FetchOutcome {
  status?: number;
  body?: unknown;
  error?: string;
}

function fetchFrom(page: Page, url: string, init: RequestInit): Promise<FetchOutcome> {
  return page.evaluate(
    async ({ url, init }) => {
      try {
        const res = await fetch(url, init);
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {}
        return { status: res.status, body };
      } catch (err) {
        return { error: String(err) };
      }
    },
    { url, init },
  );
}

beforeAll(async () => {
  [app, foreign, browser] = await Promise.all([pageServer(), pageServer(), launchChromium()]);
  node = await startNode({ ALLOWED_ORIGINS: app.origin, NODE_ID: 'node-x' });
  context = await browser.newContext();
  adminToken = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada' });
  bobToken = await token({ sub: 'bob', tid: 'acme', role: 'editor', name: 'Bob' });
  wf = await createBoard(node.url, adminToken);
  proc = await createProcess(node.url, adminToken, wf.id, 'Cross-origin card');
});

afterAll(async () => {
  await browser?.close();
  await node?.close();
  await Promise.all([app, foreign].map((p) => p && new Promise((r) => p.server.close(r))));
});

describe('a web app on another (allowed) origin', () => {
  it('calls the API with fetch and a bearer token (preflighted), reading answers and errors', async () => {
    const page = await pageAt(app.origin);
    const me = await fetchFrom(page, `${node.url}/api/me`, { headers: { authorization: `Bearer ${bobToken}` } });
    expect(me).toMatchObject({ status: 200, body: { data: { userId: 'bob', tenant: 'acme' } } });
    const moved = await fetchFrom(page, `${node.url}/api/processes/${proc.id}/transition`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bobToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'doing', expectedVersion: proc.version }),
    });
    expect(moved).toMatchObject({ status: 200, body: { data: { process: { stage: 'doing' } } } });
    proc = (moved.body as { data: { process: Process } }).data.process;
    const conflict = await fetchFrom(page, `${node.url}/api/processes/${proc.id}/transition`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bobToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'done', expectedVersion: 1 }),
    });
    expect(conflict).toMatchObject({ status: 409, body: { error: { code: 'version_conflict' } } });
    await page.close();
  });

  it('signs in with the session cookie (credentials: include) and uses it with fetch', async () => {
    const page = await pageAt(app.origin);
    const session = await fetchFrom(page, `${node.url}/auth/session`, {
      method: 'POST',
      credentials: 'include',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: adminToken }),
    });
    expect(session).toMatchObject({ status: 200, body: { data: { userId: 'ada' } } });
    expect((await context.cookies(node.url)).map((c) => c.name)).toContain('fluxo_session');
    const me = await fetchFrom(page, `${node.url}/api/me`, { credentials: 'include' });
    expect(me).toMatchObject({ status: 200, body: { data: { userId: 'ada' } } });
    await page.close();
  });

  it('connects socket.io-client with its default transports: long-polling, then the WebSocket upgrade, on the cookie or a token', async () => {
    const page = await pageAt(app.origin);
    const room = `workflow:${wf.id}`;
    const viaCookie = await socketFrom(page, node.url, { withCredentials: true }, room);
    expect(viaCookie.error).toBeUndefined();
    expect(viaCookie.hello).toEqual({ userId: 'ada', tenant: 'acme' });
    expect(viaCookie.subscribed).toMatchObject({ data: { room } });
    expect(viaCookie.transports).toEqual(['polling', 'websocket']);
    const viaToken = await socketFrom(page, node.url, { auth: { token: bobToken } }, room);
    expect(viaToken.error).toBeUndefined();
    expect(viaToken.hello).toEqual({ userId: 'bob', tenant: 'acme' });
    expect(viaToken.transports).toEqual(['polling', 'websocket']);
    console.log(`transports from ${app.origin}: cookie ${viaCookie.transports.join(' → ')}, token ${viaToken.transports.join(' → ')}`);
    await page.close();
  });
});

describe('a page of an origin not in ALLOWED_ORIGINS (same site: the cookie rides along)', () => {
  beforeAll(async () => {
    // The victim's session, as the node's own page would have set it.
    await context.addCookies([{ name: 'fluxo_session', value: adminToken, url: node.url, httpOnly: true, sameSite: 'Lax' }]);
  });

  it('reads nothing with fetch, cookie or not', async () => {
    const page = await pageAt(foreign.origin);
    const withCookie = await fetchFrom(page, `${node.url}/api/me`, { credentials: 'include' });
    expect(withCookie.error).toMatch(/Failed to fetch/);
    const withToken = await fetchFrom(page, `${node.url}/api/me`, { headers: { authorization: `Bearer ${bobToken}` } });
    expect(withToken.error).toMatch(/Failed to fetch/);
    await page.close();
  });

  it('gets no socket on any transport with the cookie', async () => {
    const page = await pageAt(foreign.origin);
    for (const opts of [
      { withCredentials: true },
      { withCredentials: true, transports: ['websocket'] },
      { withCredentials: true, transports: ['polling'] },
    ]) {
      const out = await socketFrom(page, node.url, opts, null);
      expect(out.hello, JSON.stringify(opts)).toBeUndefined();
      // Refused (403 before any Socket.IO packet, or unreadable without CORS), not just slow.
      expect(out.error, JSON.stringify(opts)).toMatch(/websocket error|xhr poll error|origin_not_allowed/);
    }
    await page.close();
  });

  it('cannot write with the cookie (a no-preflight POST reaches the server and is refused)', async () => {
    const page = await pageAt(foreign.origin);
    const before = await api<{ data: Process }>(node.url, 'GET', `/api/processes/${proc.id}`, { token: adminToken });
    await fetchFrom(page, `${node.url}/api/processes/${proc.id}/transition`, {
      method: 'POST',
      mode: 'no-cors',
      credentials: 'include',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ to: 'done' }),
    });
    const after = await api<{ data: Process }>(node.url, 'GET', `/api/processes/${proc.id}`, { token: adminToken });
    expect(after.body.data.version).toBe(before.body.data.version);
    await page.close();
  });
});
