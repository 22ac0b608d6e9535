/**
 * Cross-site WebSocket hijacking and cross-site request forgery against a real node process with
 * ALLOWED_ORIGINS set: the session cookie rides along on anything a victim's browser sends to the
 * node, so a page of another origin must get nothing from it — no socket (a typed connect_error over
 * WebSocket and over long-polling) and no write (every POST), while a token of its own, which a
 * foreign page cannot send on its own, works from anywhere, with the cookie along or not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, freshAddress, type HostileNode, startHostileNode, token } from '../harness/hostile.js';
import { serverEvents, sioClient } from '../harness/wire.js';

const APP = 'https://app.example.com';
let node: HostileNode;
let admin: string;
let processId: string;

beforeAll(async () => {
  node = await startHostileNode({ ALLOWED_ORIGINS: APP }, { name: 'csrf' });
  admin = await token('victim', 'acme', 'admin');
  const wf = await call(node.url, 'POST', '/api/workflows', {
    token: admin,
    body: { name: 'Board', stages: ['todo', 'doing', 'done'], transitions: { todo: ['doing'], doing: ['done', 'todo'] } },
  });
  const p = await call(node.url, 'POST', '/api/processes', {
    token: admin,
    body: { workflowId: (wf.body.data as { id: string }).id, title: 'card' },
  });
  processId = (p.body.data as { id: string }).id;
});
afterAll(() => node?.stop());

const cookie = (t: string) => `fluxo_session=${t}`;
const FOREIGN = [
  'https://evil.example.net',
  'null',
  'https://app.example.com.evil.net',
  'https://evil.net/https://app.example.com',
  'HTTPS://APP.EXAMPLE.COM',
  'https://app.example.com:8443',
  'http://app.example.com',
  'file://',
];

describe('cross-site WebSocket hijacking', () => {
  it('never connects a cookie handshake from a foreign Origin, over WebSocket and long-polling: a typed connect_error', async () => {
    const t = await token('victim', 'acme', 'admin');
    for (const origin of FOREIGN) {
      for (const transport of ['websocket', 'polling'] as const) {
        const s = await sioClient(
          node.url,
          {},
          {
            transport,
            headers: [
              ['Cookie', cookie(t)],
              ['Origin', origin],
            ],
            localAddress: freshAddress(),
          },
        );
        expect(s.connected, `${transport} from ${origin}: connected`).toBe(false);
        expect((s.connectError as { data?: { code?: string } }).data?.code, `${transport} from ${origin}`).toBe('origin_not_allowed');
        // Nothing of the victim's reached it: no hello, no event.
        expect(s.events(), `${transport} from ${origin}`).toEqual([]);
        await s.close();
      }
    }
  });

  it('never uses the cookie without an Origin, and uses it from an allowed Origin', async () => {
    const t = await token('victim', 'acme', 'admin');
    const none = await sioClient(node.url, {}, { headers: [['Cookie', cookie(t)]], localAddress: freshAddress() });
    expect(none.connected).toBe(false);
    expect((none.connectError as { data?: { code?: string } }).data?.code).toBe('origin_not_allowed');
    await none.close();
    for (const transport of ['websocket', 'polling'] as const) {
      const ok = await sioClient(
        node.url,
        {},
        {
          transport,
          headers: [
            ['Cookie', cookie(t)],
            ['Origin', APP],
          ],
          localAddress: freshAddress(),
        },
      );
      expect(ok.connected, `${transport} from the allowed origin`).toBe(true);
      await ok.close();
    }
  });

  it('lets a token of its own connect from any Origin (a foreign page cannot send it by itself), the cookie along or not', async () => {
    const own = await token('api', 'acme', 'viewer');
    const victims = await token('victim', 'acme', 'admin');
    for (const transport of ['websocket', 'polling'] as const) {
      for (const cookieAlong of [false, true]) {
        const headers: [string, string][] = [['Origin', 'https://evil.example.net']];
        if (cookieAlong) headers.push(['Cookie', cookie(victims)]);
        // In the auth payload, and as a Bearer header.
        for (const [auth, extra] of [
          [{ token: own }, []],
          [{}, [['Authorization', `Bearer ${own}`]]],
        ] as [Record<string, string>, [string, string][]][]) {
          const s = await sioClient(node.url, auth, { transport, headers: [...headers, ...extra], localAddress: freshAddress() });
          const what = `${transport}, cookie ${cookieAlong}, ${Object.keys(auth).length ? 'auth' : 'bearer'}`;
          expect(s.connected, what).toBe(true);
          // It is the token's user, never the cookie's.
          await s.session.until((r) => serverEvents(r).some((e) => e.event === 'hello'), Date.now() + 10_000);
          const hello = s.events().find((e) => e.event === 'hello');
          expect(hello?.args[0], what).toMatchObject({ userId: 'api' });
          await s.close();
        }
      }
    }
  });
});

describe('cross-site request forgery', () => {
  const writes = (): [string, string, unknown][] => [
    ['POST', '/api/workflows', { name: 'planted', stages: ['a'], transitions: {} }],
    ['POST', '/api/processes', { workflowId: 'x', title: 'planted' }],
    ['POST', `/api/processes/${processId}/transition`, { to: 'doing' }],
    ['POST', '/auth/logout', undefined],
    ['POST', '/auth/session', { token: 'attacker-token' }],
  ];

  it('refuses every cookie-authenticated write from a foreign Origin or a cross-site fetch, and writes nothing', async () => {
    const t = await token('victim', 'acme', 'admin');
    const before = await call(node.url, 'GET', '/api/workflows', { token: admin });
    for (const [method, path, body] of writes()) {
      for (const headers of [
        ...FOREIGN.map((origin): Record<string, string> => ({ origin })),
        { 'sec-fetch-site': 'cross-site' },
        { 'sec-fetch-site': 'cross-site', origin: APP },
      ]) {
        // text/plain: what a form or a no-preflight fetch can send cross-site.
        for (const ctype of ['application/json', 'text/plain']) {
          const res = await call(node.url, method, path, {
            headers: { cookie: cookie(t), 'content-type': ctype, ...headers },
            ...(body !== undefined ? { raw: JSON.stringify(body) } : {}),
            from: freshAddress(),
          });
          expect(res.status, `${method} ${path} ${JSON.stringify(headers)} ${ctype}: ${JSON.stringify(res.body)}`).toBe(403);
          expect(res.body.error?.code).toBe('origin_not_allowed');
        }
      }
    }
    const after = await call(node.url, 'GET', '/api/workflows', { token: admin });
    expect((after.body.data as unknown[]).length).toBe((before.body.data as unknown[]).length);
    const proc = await call(node.url, 'GET', `/api/processes/${processId}`, { token: admin });
    expect((proc.body.data as { version: number }).version).toBe(1);
    // The victim's cookie still works: the forged logout did not revoke it.
    expect((await call(node.url, 'GET', '/api/me', { headers: { cookie: cookie(t) }, from: freshAddress() })).status).toBe(200);
  });

  it('accepts the same writes from the allowed Origin, from the same origin, and from non-browser clients', async () => {
    const t = await token('victim', 'acme', 'admin');
    const host = new URL(node.url).host;
    const variants: Record<string, string>[] = [{ origin: APP }, { origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }, {}];
    for (const headers of variants) {
      const res = await call(node.url, 'POST', '/api/workflows', {
        headers: { cookie: cookie(t), ...headers },
        body: { name: 'ok', stages: ['a'], transitions: {} },
        from: freshAddress(),
      });
      expect(res.status, JSON.stringify(headers)).toBe(201);
    }
  });

  it('lets only the allowed Origin read answers (CORS): never a foreign one, never `*`', async () => {
    const t = await token('victim', 'acme', 'admin');
    for (const origin of FOREIGN) {
      const read = await call(node.url, 'GET', '/api/me', { headers: { cookie: cookie(t), origin }, from: freshAddress() });
      expect(read.headers['access-control-allow-origin'], `GET from ${origin}`).toBeUndefined();
      const pre = await call(node.url, 'OPTIONS', '/api/workflows', {
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
        from: freshAddress(),
      });
      expect(pre.status).toBeLessThan(500);
      expect(pre.headers['access-control-allow-origin'], `preflight from ${origin}`).toBeUndefined();
      const poll = await call(node.url, 'GET', '/socket.io/?EIO=4&transport=polling', { headers: { origin }, from: freshAddress() });
      expect(poll.headers['access-control-allow-origin'], `long-polling handshake from ${origin}`).toBeUndefined();
    }
    const ok = await call(node.url, 'GET', '/api/me', { headers: { cookie: cookie(t), origin: APP }, from: freshAddress() });
    expect(ok.headers['access-control-allow-origin']).toBe(APP);
    expect(ok.headers['access-control-allow-credentials']).toBe('true');
  });

  it('logged nothing at error level', () => {
    expect(node.alive()).toBe(true);
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
  });
});
