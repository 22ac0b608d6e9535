import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/topology/ports.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { asksToClose } from '../../server/transport/uws.js';
import { startNode } from '../harness/node.js';

let node: FluxoNode;
let port: number;
beforeAll(async () => {
  node = await startNode({ RATE_LIMITS: 'http:read=100000/1,http:write=100000/1', MAX_PAYLOAD_BYTES: '1024' });
  port = Number(new URL(node.url).port);
});
afterAll(() => node?.close());

/** Sends raw bytes; resolves with what came back and whether the server closed the connection (within `waitMs`). */
function raw(text: string, opts: { port?: number; waitMs?: number; endAt?: RegExp } = {}): Promise<{ out: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(opts.port ?? port, '127.0.0.1', () => socket.write(text));
    let out = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ out, closed: false });
    }, opts.waitMs ?? 500);
    socket.on('data', (d) => {
      out += d.toString('latin1');
      // An upgrade never ends on its own: stop once the status and headers are in.
      if (opts.endAt?.test(out)) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ out, closed: false });
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ out, closed: true });
    });
    socket.on('error', reject);
  });
}

/** The header block of a raw response, lower-cased names. */
function headersOf(out: string): Map<string, string[]> {
  const head = out.split('\r\n\r\n')[0] ?? '';
  const map = new Map<string, string[]>();
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    map.set(name, [...(map.get(name) ?? []), line.slice(i + 1).trim()]);
  }
  return map;
}

describe('Connection: close (RFC 9112 §9.6)', () => {
  it('parses the close option out of a Connection list', () => {
    expect(asksToClose('close')).toBe(true);
    expect(asksToClose('Keep-Alive, CLOSE')).toBe(true);
    expect(asksToClose('keep-alive')).toBe(false);
    expect(asksToClose('closed')).toBe(false);
    expect(asksToClose(undefined)).toBe(false);
  });

  it.each([
    ['close', true],
    ['Close', true],
    ['keep-alive, close', true],
    ['close, TE', true],
    ['keep-alive', false],
    [null, false],
    // Any 5-character value makes uWebSockets.js close: the response must say so then too.
    ['xxxxx', true],
  ])('Connection: %s → the response says close exactly when the connection is closed', async (connection, closes) => {
    const { out, closed } = await raw(`GET /health HTTP/1.1\r\nHost: x\r\n${connection ? `Connection: ${connection}\r\n` : ''}\r\n`);
    expect(out).toMatch(/^HTTP\/1\.1 200 /);
    const said = headersOf(out).get('connection') ?? [];
    expect(closed).toBe(closes);
    expect(said).toEqual(closes ? ['close'] : []);
  });

  it('says close on a POST, on an error answer, and on a 413 it really closes', async () => {
    const t = await token({ sub: 'c', tid: 'conn', role: 'admin' });
    const body = JSON.stringify({ name: 'B', stages: ['a', 'b'], transitions: { a: ['b'] } });
    const post = await raw(
      `POST /api/workflows HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${t}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    expect(post.out).toMatch(/^HTTP\/1\.1 201 /);
    expect(headersOf(post.out).get('connection')).toEqual(['close']);
    expect(post.closed).toBe(true);

    const notFound = await raw('GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(notFound.out).toMatch(/^HTTP\/1\.1 404 /);
    expect(headersOf(notFound.out).get('connection')).toEqual(['close']);
    expect(notFound.closed).toBe(true);

    // Declared larger than MAX_PAYLOAD_BYTES: answered before the body, and the connection is not
    // left open for the rest of that body to be read as another request.
    const big = await raw('POST /api/workflows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{');
    expect(big.out).toMatch(/^HTTP\/1\.1 413 /);
    expect(headersOf(big.out).get('connection')).toEqual(['close']);
    expect(big.closed).toBe(true);
  });

  it("lets Node's keep-alive clients make many sequential requests with connection: close, never 'socket hang up'", async () => {
    const t = await token({ sub: 'ka', tid: 'conn' });
    const errors: string[] = [];
    // fetch (undici)
    for (let i = 0; i < 40; i++) {
      try {
        const res = await fetch(`${node.url}/api/me`, { headers: { connection: 'close', authorization: `Bearer ${t}` } });
        expect(res.status).toBe(200);
        expect(res.headers.get('connection')).toBe('close');
        await res.text();
      } catch (err) {
        errors.push(`fetch #${i}: ${(err as Error).message} ${String((err as { cause?: unknown }).cause ?? '')}`);
      }
    }
    // node:http with a keep-alive agent (what node-fetch and axios use), one socket at a time,
    // `connection: close` on every other request: it must not reuse a connection the server closes.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 40; i++) {
        const headers: Record<string, string> = { authorization: `Bearer ${t}`, ...(i % 2 === 0 ? { connection: 'close' } : {}) };
        await new Promise<void>((resolve) => {
          const req = httpRequest(`${node.url}/api/me`, { agent, headers }, (res) => {
            res.resume();
            res.on('end', () => resolve());
          });
          req.on('error', (err) => {
            errors.push(`http #${i}: ${err.message}`);
            resolve();
          });
          req.end();
        });
      }
    } finally {
      agent.destroy();
    }
    expect(errors).toEqual([]);
  });
});

describe('the uWebSockets version header', () => {
  let nginx: ChildProcess | null = null;
  let dir = '';
  let nginxPort = 0;

  beforeAll(async () => {
    // The production nginx/nginx.conf as shipped, pointed at this node on loopback.
    dir = await mkdtemp(join(tmpdir(), 'fluxo-nginx-hdr-'));
    nginxPort = await freePort();
    const shipped = await readFile(join(import.meta.dirname, '../../nginx/nginx.conf'), 'utf8');
    const conf = `daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\n${shipped}`
      .replace(/^\s*server fluxo-[23]:8080[^\n]*\n/gm, '')
      .replace(/fluxo-1:8080/, `127.0.0.1:${port}`)
      .replace(/listen 80;/, `listen 127.0.0.1:${nginxPort};`)
      .replace(/worker_processes auto;/, 'worker_processes 1;')
      .replace(/worker_connections \d+;/, 'worker_connections 512;')
      .replace(
        /^http \{/m,
        `http {\n  access_log off;\n${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t};`).join('\n')}`,
      );
    await writeFile(join(dir, 'nginx.conf'), conf);
    nginx = spawn(process.env.NGINX_BIN ?? 'nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (
        await fetch(`http://127.0.0.1:${nginxPort}/health`).then(
          (r) => r.ok,
          () => false,
        )
      )
        return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nginx did not start (see ${dir}/error.log)`);
  });
  afterAll(async () => {
    nginx?.kill('SIGQUIT');
    await new Promise((r) => setTimeout(r, 200));
    if (nginx && nginx.exitCode === null) nginx.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('is sent by a node reached directly (uWebSockets.js cannot drop it: documented) and stripped by nginx/nginx.conf', async () => {
    expect((await fetch(`${node.url}/health`)).headers.get('uwebsockets')).toBe('20');
    const conf = await readFile(join(import.meta.dirname, '../../nginx/nginx.conf'), 'utf8');
    expect(conf).toMatch(/^\s*proxy_hide_header uWebSockets;/m);
    const readme = await readFile(join(import.meta.dirname, '../../README.md'), 'utf8');
    expect(readme).toContain('proxy_hide_header uWebSockets;');

    const proxied = await fetch(`http://127.0.0.1:${nginxPort}/health`);
    expect(proxied.status).toBe(200);
    expect(proxied.headers.get('uwebsockets')).toBeNull();
    expect(proxied.headers.get('server')).toBe('nginx'); // server_tokens off: no nginx version either
    const error = await fetch(`http://127.0.0.1:${nginxPort}/api/me`);
    expect(error.status).toBe(401);
    expect(error.headers.get('uwebsockets')).toBeNull();
  });

  it('is stripped from the WebSocket upgrade answered through nginx', async () => {
    const t = await token({ sub: 'ws', tid: 'conn' });
    const upgrade = [
      `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1`,
      'Host: x',
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      `Authorization: Bearer ${t}`,
      '',
      '',
    ].join('\r\n');
    const direct = await raw(upgrade, { endAt: /\r\n\r\n/ });
    expect(direct.out).toMatch(/^HTTP\/1\.1 101 /);
    expect(headersOf(direct.out).has('uwebsockets')).toBe(true);
    const proxied = await raw(upgrade, { port: nginxPort, endAt: /\r\n\r\n/ });
    expect(proxied.out).toMatch(/^HTTP\/1\.1 101 /);
    expect(headersOf(proxied.out).has('uwebsockets')).toBe(false);
  });
});

describe('request header size (UWS_HTTP_MAX_HEADERS_SIZE, server/transport/uws-env.ts)', () => {
  it('lets a header block up to 64 KiB reach Fluxo (a token over 8,192 characters gets its typed 401), and uWS answer 431 over it', async () => {
    const call = (tokenChars: number) => fetch(`${node.url}/api/me`, { headers: { authorization: `Bearer ${'A'.repeat(tokenChars)}` } });
    // uWS v20.51 alone would answer 431 from 4 KiB: a token Fluxo accepts (≤ 8,192 characters) must pass, in the header and the cookie.
    const both = await fetch(`${node.url}/api/me`, {
      headers: { authorization: `Bearer ${'A'.repeat(8192)}`, cookie: `fluxo_session=${'A'.repeat(8192)}` },
    });
    expect(both.status).toBe(401);
    const long = await call(60_000);
    expect(long.status).toBe(401);
    expect(((await long.json()) as { error: { code: string } }).error.code).toBe('token_invalid');
    const over = await call(64 * 1024);
    expect(over.status).toBe(431);
  });
});
