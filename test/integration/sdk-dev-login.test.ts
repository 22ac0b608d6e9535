import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FluxoNode } from '../../server/app.js';
import { loadConfig } from '../../server/config/index.js';
import { AppError, toErrorBody } from '../../server/errors.js';
import { DEMO_USERS, devLoginRoutes } from '../../server/http/dev-login.js';
import { errorResponse } from '../../server/http/respond.js';
import { Router } from '../../server/http/router.js';
import type { HttpResponse } from '../../server/transport/uws.js';
import { api, startNode, TEST_SECRET } from '../harness/node.js';

/** The dev-login routes on their own router (app.ts mounts them); tokens are checked by a real node. */
function routes(env: Record<string, string>) {
  const router = new Router<HttpResponse>();
  devLoginRoutes(router, { config: loadConfig({ JWT_SECRET: TEST_SECRET, ...env }) });
  return async (method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; query?: string } = {}) => {
    const match = router.match(method, path);
    if (!match || 'methodNotAllowed' in match) throw new Error(`no route ${method} ${path}`);
    try {
      return await match.route.handler({
        req: {
          method,
          path,
          query: new URLSearchParams(opts.query ?? ''),
          headers: { 'content-type': 'application/json', host: 'localhost:8080', ...(opts.headers ?? {}) },
          peer: '127.0.0.1',
          body: opts.body === undefined ? null : Buffer.from(JSON.stringify(opts.body)),
        },
        params: match.params,
      });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return errorResponse(toErrorBody(err));
    }
  };
}

let node: FluxoNode;
beforeAll(async () => {
  node = await startNode();
});
afterAll(() => node?.shutdown());

describe('dev login', () => {
  it('lists the demo users and mints a short-lived token for one, set as an httpOnly cookie', async () => {
    const call = routes({ NODE_ENV: 'development' });
    const users = await call('GET', '/auth/dev-users');
    expect(users.status).toBe(200);
    expect(JSON.parse(String(users.body)).data).toEqual({ tenant: 'acme', users: DEMO_USERS });

    const res = await call('POST', '/auth/dev-login', { body: { userId: 'grace', tenant: 'acme' } });
    expect(res.status).toBe(200);
    const data = JSON.parse(String(res.body)).data;
    expect(data).toMatchObject({ userId: 'grace', tenant: 'acme', role: 'editor', name: 'Grace Hopper' });
    expect(data.exp - Date.now() / 1000).toBeLessThanOrEqual(15 * 60);
    const cookie = res.headers?.find(([k]) => k === 'Set-Cookie')?.[1] ?? '';
    expect(cookie).toMatch(/^fluxo_session=.+; Max-Age=900; Path=\/; HttpOnly; SameSite=Lax$/);
    // The node accepts the minted token.
    const me = await api<{ data: { userId: string; tenant: string } }>(node.url, 'GET', '/api/me', { token: data.token });
    expect(me.body.data).toMatchObject({ userId: 'grace', tenant: 'acme' });
  });

  it('refuses unknown users, cross-site requests, and answers 404 when DEV_LOGIN is off', async () => {
    const call = routes({ NODE_ENV: 'development' });
    expect((await call('POST', '/auth/dev-login', { body: { userId: 'mallory' } })).status).toBe(404);
    expect((await call('POST', '/auth/dev-login', { body: { userId: 'ada' }, headers: { origin: 'https://evil.example' } })).status).toBe(
      403,
    );
    const off = routes({ NODE_ENV: 'development', DEV_LOGIN: 'false' });
    expect((await off('GET', '/auth/dev-users')).status).toBe(404);
    expect((await off('POST', '/auth/dev-login', { body: { userId: 'ada' } })).status).toBe(404);
    // Production turns it off by default.
    const prod = routes({ NODE_ENV: 'production' });
    expect((await prod('GET', '/auth/dev-users')).status).toBe(404);
  });
});
