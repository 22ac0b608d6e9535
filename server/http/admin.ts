import { createHash, timingSafeEqual } from 'node:crypto';
import type { Role } from '../../shared/protocol.js';
import { parseRoom } from '../../shared/rooms.js';
import {
  adminDisconnectBody,
  adminRoomPath,
  adminRoomsQuery,
  adminTenantPath,
  adminUnsubscribeBody,
  adminUserPath,
} from '../../shared/schemas.js';
import { bearerToken, clientIp } from '../auth/token-source.js';
import type { TokenVerifier } from '../auth/types.js';
import type { Config } from '../config/index.js';
import { AppError } from '../errors.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { Logger } from '../ops/logger.js';
import type { Operator } from '../realtime/operator.js';
import type { HttpRequest, HttpResponse } from '../transport/uws.js';
import { json, queryObject, readJson, validate } from './respond.js';
import type { RouteContext, Router } from './router.js';

export interface AdminDeps {
  config: Config;
  verifier: TokenVerifier;
  limits: RateLimits;
  operator: Operator;
  log: Logger;
}

/** Who is calling: the operator (OPERATOR_API_KEY, every tenant) or a token of one tenant (`admin` role required). */
type Caller = { kind: 'operator' } | { kind: 'token'; tenant: string; userId: string; role: Role };

/**
 * Budget points an operator call spends of `http:read` / `http:write`: each one makes every node
 * scan its sockets, so it costs like ten plain reads (10 calls a second per caller by default).
 */
const CALL_POINTS = 10;

/**
 * The operator API, under /api/admin. Bearer only — the session cookie is not accepted here, so a
 * page of another site cannot make an admin's browser call it (no CSRF surface).
 * - OPERATOR_API_KEY: any tenant (named in the path), and the whole cluster's node counts.
 * - A token with role `admin`: its own tenant only (another tenant is 403 `forbidden`), and node
 *   counts of its tenant's connections. Other roles: 403.
 */
export function adminRoutes(router: Router<HttpResponse>, deps: AdminDeps): void {
  const { config, verifier, limits, operator, log } = deps;
  const operatorKey = config.operatorApiKey ? digest(config.operatorApiKey) : null;

  /** Like the /api routes: a point of the IP's `auth` budget until the credential verifies. */
  async function identify(req: HttpRequest): Promise<Caller> {
    const ip = clientIp(req.peer, req.headers, config.trustProxy);
    await limits.consume('auth', ip);
    try {
      const caller = await credential(req);
      void limits.refund('auth', ip);
      return caller;
    } catch (err) {
      if (!(err instanceof AppError) || err.status >= 500) void limits.refund('auth', ip);
      throw err;
    }
  }

  async function credential(req: HttpRequest): Promise<Caller> {
    const bearer = bearerToken(req.headers.authorization);
    if (!bearer) throw new AppError('unauthorized', 'Send the operator API key or an admin token as a Bearer credential.');
    // Hashed first: equal lengths for timingSafeEqual, and the key's length is not timed either.
    if (operatorKey && timingSafeEqual(digest(bearer), operatorKey)) return { kind: 'operator' };
    // Not a JWT: a wrong key, told apart from a bad token.
    if (bearer.split('.').length !== 3) throw new AppError('unauthorized', 'A valid operator API key or admin token is required.');
    const p = await verifier.verify(bearer);
    return { kind: 'token', tenant: p.tenant, userId: p.userId, role: p.role };
  }

  /** Who pays (rate limits) and who is named in the audit log; a token's subject is the one its other API calls pay as. */
  const by = (caller: Caller) => (caller.kind === 'operator' ? 'operator' : `${caller.tenant}:${caller.userId}`);

  const route =
    (write: boolean, fn: (ctx: RouteContext, caller: Caller) => Promise<HttpResponse>) =>
    async (ctx: RouteContext): Promise<HttpResponse> => {
      const caller = await identify(ctx.req);
      await limits.consume(write ? 'http:write' : 'http:read', by(caller), CALL_POINTS);
      if (caller.kind === 'token' && caller.role !== 'admin') {
        throw new AppError('forbidden', 'The operator API needs OPERATOR_API_KEY or a token with role admin.');
      }
      return fn(ctx, caller);
    };

  /** The path's tenant, when the caller may act on it. */
  function tenantOf(caller: Caller, tenant: string): string {
    if (caller.kind === 'token' && caller.tenant !== tenant) throw new AppError('forbidden', 'An admin token acts on its own tenant only.');
    return tenant;
  }

  /** The tenant and user of a `…/users/:userId/…` path, when the caller may act on that tenant. */
  function userOf(caller: Caller, params: Record<string, string>): { tenant: string; userId: string } {
    const path = validate(adminUserPath, { tenant: params.tenant, userId: params.userId });
    return { tenant: tenantOf(caller, path.tenant), userId: path.userId };
  }

  function roomOf(room: string): string {
    const parsed = parseRoom(room);
    if (!parsed) throw new AppError('invalid_room');
    return parsed.name;
  }

  router
    .add(
      'GET',
      '/api/admin/nodes',
      route(false, async (_ctx, caller) => json(200, await operator.nodes(caller.kind === 'token' ? caller.tenant : null))),
    )
    .add(
      'GET',
      '/api/admin/tenants/:tenant/rooms',
      route(false, async ({ req, params }, caller) => {
        const tenant = tenantOf(caller, validate(adminTenantPath, { tenant: params.tenant }).tenant);
        const { limit } = validate(adminRoomsQuery, queryObject(req.query));
        return json(200, await operator.rooms(tenant, limit));
      }),
    )
    .add(
      'GET',
      '/api/admin/tenants/:tenant/rooms/:room/presence',
      route(false, async ({ params }, caller) => {
        const path = validate(adminRoomPath, { tenant: params.tenant, room: params.room });
        return json(200, { data: await operator.presence(tenantOf(caller, path.tenant), roomOf(path.room)) });
      }),
    )
    .add(
      'GET',
      '/api/admin/tenants/:tenant/users/:userId/connections',
      route(false, async ({ params }, caller) => {
        const { tenant, userId } = userOf(caller, params);
        return json(200, await operator.connections(tenant, userId));
      }),
    )
    .add(
      'POST',
      '/api/admin/tenants/:tenant/users/:userId/disconnect',
      route(true, async ({ req, params }, caller) => {
        const { tenant, userId } = userOf(caller, params);
        // Everything is optional: no body at all means the defaults.
        const body = validate(adminDisconnectBody, req.body?.length ? readJson(req) : {});
        const result = await operator.disconnect(tenant, userId, body);
        log.info(
          { by: by(caller), tenant, user: userId, reconnect: body.reconnect, ...result.data, missing: result.missing },
          'operator: user disconnected',
        );
        return json(200, result);
      }),
    )
    .add(
      'POST',
      '/api/admin/tenants/:tenant/users/:userId/unsubscribe',
      route(true, async ({ req, params }, caller) => {
        const { tenant, userId } = userOf(caller, params);
        const room = roomOf(validate(adminUnsubscribeBody, readJson(req)).room);
        const result = await operator.unsubscribe(tenant, userId, room);
        log.info({ by: by(caller), tenant, user: userId, room, ...result.data, missing: result.missing }, 'operator: user unsubscribed');
        return json(200, result);
      }),
    );
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
