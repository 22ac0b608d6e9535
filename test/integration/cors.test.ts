import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { client, startNode } from '../harness/node.js';

/**
 * CORS on the HTTP API and on Socket.IO's long-polling (ALLOWED_ORIGINS, exact matches), and the
 * rule deciding which handshakes may use the session cookie (server/auth/token-source.ts
 * `cookiePage`), on the wire. The browser side is test/browser/cross-origin.test.ts and
 * test/browser/no-websocket.test.ts.
 */

const APP = 'https://app.example.com';
const EVIL = 'https://evil.example.net';
let node: FluxoNode;
let host: string;

beforeAll(async () => {
  node = await startNode({ ALLOWED_ORIGINS: APP, RATE_LIMITS: 'handshake=1000/1,http:read=1000/1' });
  host = new URL(node.url).host;
});
afterAll(() => node?.close());

async function options(path: string, headers: Record<string, string>): Promise<Response> {
  return fetch(node.url + path, { method: 'OPTIONS', headers });
}

describe('CORS on the HTTP API', () => {
  it('answers a preflight from an allowed origin: 204, its origin, credentials, the methods of the route, Vary', async () => {
    const res = await options('/api/processes/p1/transition', {
      origin: APP,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toMatch(/authorization.*content-type/);
    expect(Number(res.headers.get('access-control-max-age'))).toBeGreaterThan(0);
    expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
    expect(res.headers.get('allow')).toBe('POST, OPTIONS');
    const list = await options('/api/processes', { origin: APP, 'access-control-request-method': 'GET' });
    expect(list.headers.get('access-control-allow-methods')).toBe('GET, POST, HEAD, OPTIONS');
  });

  it('grants nothing to another origin, nor to a near miss of the allowed one', async () => {
    for (const origin of [EVIL, 'null', `${APP}.evil.net`, 'http://app.example.com', 'https://app.example.com:8443']) {
      const res = await options('/api/me', { origin, 'access-control-request-method': 'GET' });
      expect(res.status, origin).toBe(204);
      expect(res.headers.get('access-control-allow-origin'), origin).toBeNull();
      expect(res.headers.get('access-control-allow-credentials'), origin).toBeNull();
      expect(res.headers.get('vary'), origin).toMatch(/\bOrigin\b/);
    }
  });

  it('answers OPTIONS without CORS with Allow, and 404 for a path no route has', async () => {
    const plain = await options('/api/workflows', {});
    expect(plain.status).toBe(204);
    expect(plain.headers.get('allow')).toBe('GET, POST, HEAD, OPTIONS');
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
    const missing = await options('/api/nowhere', { origin: APP, 'access-control-request-method': 'GET' });
    expect(missing.status).toBe(404);
  });

  it('lets the allowed origin read answers, errors included (exposing Retry-After); Vary: Origin on every answer', async () => {
    const t = await token({ sub: 'c', tid: 'acme' });
    const ok = await api(node.url, 'GET', '/api/me', { token: t, headers: { origin: APP } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    expect(ok.headers.get('access-control-expose-headers')).toContain('Retry-After');
    expect(ok.headers.get('vary')).toMatch(/\bOrigin\b/);
    const denied = await api(node.url, 'GET', '/api/me', { headers: { origin: APP } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get('access-control-allow-origin')).toBe(APP);
    for (const headers of [{ origin: EVIL }, {}] as Record<string, string>[]) {
      const res = await api(node.url, 'GET', '/api/me', { token: t, headers });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
      expect(res.headers.get('vary')).toMatch(/\bOrigin\b/);
    }
  });
});

describe('CORS on Socket.IO long-polling', () => {
  const polling = '/socket.io/?EIO=4&transport=polling';
  it('lets the allowed origin read the handshake, with credentials; not another origin', async () => {
    const ok = await fetch(node.url + polling, { headers: { origin: APP } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    expect(ok.headers.get('vary')).toMatch(/\bOrigin\b/);
    await ok.text();
    const evil = await fetch(node.url + polling, { headers: { origin: EVIL } });
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    expect(evil.headers.get('access-control-allow-credentials')).toBeNull();
    expect(evil.headers.get('vary')).toMatch(/\bOrigin\b/);
    await evil.text();
  });

  it('answers its preflight (extra headers from socket.io-client) for the allowed origin only', async () => {
    const ok = await options(polling, {
      origin: APP,
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'authorization',
    });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
    expect(ok.headers.get('access-control-allow-headers')).toContain('Authorization');
    const evil = await options(polling, { origin: EVIL, 'access-control-request-method': 'GET' });
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('the session cookie on a Socket.IO handshake', () => {
  const cookie = async () => `fluxo_session=${await token({ sub: 'cookie-user', tid: 'acme' })}`;

  it("is used on a same-origin long-polling handshake: no Origin, but Sec-Fetch-Site: same-origin, or this node's Referer", async () => {
    const pages: Record<string, string>[] = [
      { 'sec-fetch-site': 'same-origin' },
      { referer: `http://${host}/?workflow=w1` },
      { referer: `${APP}/board` },
    ];
    for (const headers of pages) {
      const s = await client(node.url, { transports: ['polling'], headers: { cookie: await cookie(), ...headers } });
      expect(s.connected, JSON.stringify(headers)).toBe(true);
      s.close();
    }
  });

  it('is refused when the headers name another page, on either transport', async () => {
    const foreign: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'none' },
      { referer: `${EVIL}/page` },
      { origin: EVIL, 'sec-fetch-site': 'same-origin' },
    ];
    for (const headers of foreign) {
      for (const transport of ['polling', 'websocket'] as const) {
        const refused = await client(node.url, { transports: [transport], headers: { cookie: await cookie(), ...headers } }).then(
          (s) => {
            s.close();
            return null;
          },
          (err: Error) => err,
        );
        expect(refused, `${transport} ${JSON.stringify(headers)}`).toBeInstanceOf(Error);
      }
    }
  });

  it('is not used when nothing names the page (a non-browser client sends a token instead)', async () => {
    const err = await client(node.url, { transports: ['polling'], headers: { cookie: await cookie() } }).catch(
      (e: { data?: { code?: string } }) => e,
    );
    expect((err as { data?: { code?: string } }).data?.code).toBe('origin_not_allowed');
  });
});
