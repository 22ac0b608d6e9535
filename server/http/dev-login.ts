import { z } from 'zod';
import type { Role } from '../../shared/protocol.js';
import { TENANT_ID } from '../../shared/rooms.js';
import { DEV_JWT_SECRET } from '../auth/dev-secret.js';
import { mintToken } from '../auth/mint.js';
import { isCrossSiteWrite, sessionCookie } from '../auth/token-source.js';
import type { Config } from '../config/index.js';
import { AppError } from '../errors.js';
import { cookieOrigins } from '../realtime/io.js';
import type { HttpResponse } from '../transport/uws.js';
import { json, queryObject, readBody, validate } from './respond.js';
import type { Router } from './router.js';

export interface DemoUser {
  id: string;
  name: string;
  role: Role;
}

/** The tenant `npm run seed` fills by default and the page offers. */
export const DEMO_TENANT = 'acme';

/**
 * The demo users. Fluxo keeps no user table (identity comes from the token), so the demo users are
 * this list; `npm run seed` uses it for the data it creates.
 */
export const DEMO_USERS: readonly DemoUser[] = [
  { id: 'ada', name: 'Ada Lovelace', role: 'admin' },
  { id: 'grace', name: 'Grace Hopper', role: 'editor' },
  { id: 'alan', name: 'Alan Turing', role: 'editor' },
  { id: 'edsger', name: 'Edsger Dijkstra', role: 'editor' },
  { id: 'barbara', name: 'Barbara Liskov', role: 'viewer' },
];

/**
 * Demo tokens live 15 minutes: long enough to try things, short enough that the page's token
 * refresh (through the SDK's getToken, on `auth:expiring`) is exercised every session.
 */
export const DEV_TOKEN_TTL_S = 15 * 60;

const tenantQuery = z.object({ tenant: z.string().regex(TENANT_ID).default(DEMO_TENANT) });
const devLoginSchema = z
  .object({
    userId: z.string().max(128),
    tenant: z.string().regex(TENANT_ID).default(DEMO_TENANT),
  })
  .strict();

/**
 * Demo sign-in for development: lists the demo users and mints a short-lived token for one of them,
 * set as the session cookie — to anyone who asks. So it is on only where tokens prove nothing anyway
 * (config: the embedded mode with the built-in development secret; DEV_LOGIN=true is refused with
 * JWT_SECRET, JWT_JWKS_URL, DATABASE_URL or in production), and the node says so at start. Answers
 * 404 when off, so a real deployment does not even reveal that the routes exist.
 */
export function devLoginRoutes(router: Router<HttpResponse>, deps: { config: Config }): void {
  const { config } = deps;
  const requireOn = () => {
    if (!config.devLogin) throw new AppError('not_found');
  };
  router
    .add('GET', '/auth/dev-users', async ({ req }) => {
      requireOn();
      const { tenant } = validate(tenantQuery, queryObject(req.query));
      return json(200, { data: { tenant, users: DEMO_USERS } });
    })
    .add('POST', '/auth/dev-login', async ({ req }) => {
      requireOn();
      if (isCrossSiteWrite(req.headers, cookieOrigins(config, req.headers.host), req.headers.host))
        throw new AppError('origin_not_allowed');
      const { userId, tenant } = readBody(req, devLoginSchema);
      const user = DEMO_USERS.find((u) => u.id === userId);
      if (!user) throw new AppError('not_found', 'No such demo user.');
      const token = await mintToken({
        sub: user.id,
        tid: tenant,
        role: user.role,
        name: user.name,
        ttlS: DEV_TOKEN_TTL_S,
        secret: config.jwt.secret ?? DEV_JWT_SECRET,
        issuer: config.jwt.issuer,
        audience: config.jwt.audience,
      });
      const exp = Math.floor(Date.now() / 1000) + DEV_TOKEN_TTL_S;
      // The token is also returned: the page hands it to the socket on `auth:refresh` (dev only).
      return json(200, { data: { token, userId: user.id, tenant, role: user.role, name: user.name, exp } }, [
        ['Set-Cookie', sessionCookie(config.cookieName, token, { secure: config.cookieSecure, maxAgeS: DEV_TOKEN_TTL_S })],
      ]);
    });
}
