import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { TEST_SECRET } from '../../scripts/topology/tokens.js';
import { createApp, type FluxoNode } from '../../server/app.js';
import { ConfigError, loadConfig } from '../../server/config/index.js';
import { AppError, toErrorBody } from '../../server/errors.js';
import { DEMO_USERS, devLoginRoutes } from '../../server/http/dev-login.js';
import { errorResponse } from '../../server/http/respond.js';
import { Router } from '../../server/http/router.js';
import type { HttpResponse } from '../../server/transport/uws.js';
import { startNode } from '../harness/node.js';

/**
 * The dev-login routes on their own router (app.ts mounts them); tokens are checked by a real node.
 * No JWT_SECRET unless `env` sets one: demo sign-in is only on with the built-in development secret.
 */
function routes(env: Record<string, string>) {
  const router = new Router<HttpResponse>();
  devLoginRoutes(router, { config: loadConfig(env) });
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
  // The built-in development secret (no JWT_SECRET): the one demo tokens are signed with.
  node = await startNode({ JWT_SECRET: '' });
});
afterAll(() => node?.close());

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
    const prod = routes({ NODE_ENV: 'production', JWT_SECRET: TEST_SECRET });
    expect((await prod('GET', '/auth/dev-users')).status).toBe(404);
  });

  it('is off with a configured secret, a JWKS or a DATABASE_URL, and refused there even when asked for', async () => {
    const configured: Record<string, string>[] = [
      { JWT_SECRET: TEST_SECRET },
      { JWT_JWKS_URL: 'https://idp.example.com/jwks' },
      { DATABASE_URL: 'postgres://fluxo@127.0.0.1:5432/fluxo' },
    ];
    for (const env of configured) {
      const call = routes({ NODE_ENV: 'development', ...env });
      expect((await call('GET', '/auth/dev-users')).status, JSON.stringify(env)).toBe(404);
      expect((await call('POST', '/auth/dev-login', { body: { userId: 'ada' } })).status, JSON.stringify(env)).toBe(404);
      expect(() => loadConfig({ NODE_ENV: 'development', DEV_LOGIN: 'true', ...env })).toThrow(ConfigError);
    }
    // A real node with a secret (what the test harness starts) does not mint tokens for strangers.
    const withSecret = await startNode({ NODE_ENV: 'development' });
    try {
      expect((await api(withSecret.url, 'GET', '/auth/dev-users')).status).toBe(404);
      expect((await api(withSecret.url, 'POST', '/auth/dev-login', { body: { userId: 'ada' } })).status).toBe(404);
    } finally {
      await withSecret.close();
    }
  });

  it('is on by default in the embedded mode with the development secret, and the node says so at start', async () => {
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).trim().split('\n')) lines.push(JSON.parse(line));
        done();
      },
    });
    const env = { PORT: '0', HOST: '127.0.0.1', MIGRATE_ON_START: 'true', SHUTDOWN_GRACE_MS: '500' };
    const config = loadConfig(env);
    expect(config.devLogin).toBe(true);
    const dev = await createApp(config, { logger: pino({ level: 'info' }, sink) });
    try {
      await dev.listen();
      expect((await api(dev.url, 'GET', '/auth/dev-users')).status).toBe(200);
      expect(lines.some((l) => l.level === 40 && /DEV_LOGIN is on/.test(l.msg))).toBe(true);
    } finally {
      await dev.close();
    }
    // Off: not a word about it (built, never started).
    lines.length = 0;
    const quiet = await createApp(loadConfig({ ...env, DEV_LOGIN: 'false' }), { logger: pino({ level: 'info' }, sink) });
    await quiet.close();
    expect(lines.some((l) => /DEV_LOGIN/.test(l.msg))).toBe(false);
  });
});
