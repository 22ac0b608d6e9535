import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  createProcessSchema,
  createWorkflowSchema,
  eventsQuery,
  id,
  listProcessesQuery,
  publishBatchSchema,
  publishSchema,
  sessionSchema,
  transitionBodySchema,
} from '../../shared/schemas.js';
import type { Revocations } from '../auth/revocations.js';
import { bearerToken, clearSessionCookie, clientIp, isCrossSiteWrite, parseCookies, sessionCookie } from '../auth/token-source.js';
import type { Principal, TokenVerifier } from '../auth/types.js';
import type { Config } from '../config/index.js';
import type { WorkflowService } from '../domain/workflow-service.js';
import { AppError } from '../errors.js';
import type { LimitEvent } from '../limits/parse.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { FluxoServer } from '../realtime/deps.js';
import { disconnectEverywhere } from '../realtime/disconnects.js';
import { revocationRoom } from '../realtime/handlers.js';
import { cookieOrigins } from '../realtime/io.js';
import type { HttpRequest, HttpResponse } from '../transport/uws.js';
import { json, queryObject, readBody, readJson, validate } from './respond.js';
import type { RouteContext, Router } from './router.js';

export interface ApiDeps {
  config: Config;
  verifier: TokenVerifier;
  revocations: Revocations;
  limits: RateLimits;
  service: WorkflowService;
  io: FluxoServer;
}

interface Authed {
  principal: Principal;
  token: string;
  viaCookie: boolean;
}

const WRITE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The `:id` of a route, validated like ids in bodies (a U+0000 in it reached SQL and answered 500). */
const pathIdSchema = z.object({ id });
function pathId(params: Record<string, string>): string {
  // Built once: zod compiles a schema on its first use, per schema object. Built per request, zod
  // and validate went from 1.4 % to 8.6 % of the node's busy CPU in the write-path bench profile.
  return validate(pathIdSchema, { id: params.id }).id;
}

/** The JSON API under /api and /auth. */
export function apiRoutes(router: Router<HttpResponse>, deps: ApiDeps): void {
  const { config, verifier, limits, service } = deps;

  /**
   * Until its credentials verify, a request is unauthenticated: it first pays a point of its client
   * IP's `auth` budget (so a flood of bad tokens is refused before any of them is verified) and
   * gets it back once they verify — or when verifying failed on the server's side (5xx).
   */
  async function paid<T>(req: HttpRequest, check: () => Promise<T>): Promise<T> {
    const ip = clientIp(req.peer, req.headers, config.trustProxy);
    await limits.consume('auth', ip);
    try {
      const result = await check();
      void limits.refund('auth', ip);
      return result;
    } catch (err) {
      if (!(err instanceof AppError) || err.status >= 500) void limits.refund('auth', ip);
      throw err;
    }
  }

  const authenticate = (req: HttpRequest): Promise<Authed> => paid(req, () => credentials(req));

  async function credentials(req: HttpRequest): Promise<Authed> {
    const bearer = bearerToken(req.headers.authorization);
    if (bearer) return { principal: await verifier.verify(bearer), token: bearer, viaCookie: false };
    const cookie = parseCookies(req.headers.cookie)[config.cookieName];
    if (!cookie) throw new AppError('unauthorized');
    // A cookie rides along on cross-site requests: writes must come from an allowed origin.
    if (WRITE.has(req.method) && isCrossSiteWrite(req.headers, cookieOrigins(config, req.headers.host), req.headers.host)) {
      throw new AppError('origin_not_allowed');
    }
    return { principal: await verifier.verify(cookie), token: cookie, viaCookie: true };
  }

  /**
   * Authenticated, rate-limited route: spends `http:write` or `http:read`, then `also` (the route's
   * own budgets), in one round trip to Redis (`consumeAll`).
   */
  const authed =
    (fn: (ctx: RouteContext, p: Principal) => Promise<HttpResponse>, also: readonly LimitEvent[] = []) =>
    async (ctx: RouteContext): Promise<HttpResponse> => {
      const { principal } = await authenticate(ctx.req);
      const budget: LimitEvent = WRITE.has(ctx.req.method) ? 'http:write' : 'http:read';
      const subject = `${principal.tenant}:${principal.userId}`;
      if (also.length === 0) await limits.consume(budget, subject);
      else await limits.consumeAll([budget, ...also], subject);
      return fn(ctx, principal);
    };

  /** `GET …/:id`: the one resource of the caller's tenant with that id (404 `not_found` when none). */
  const byId = <T>(get: (p: Principal, id: string) => Promise<T>) =>
    authed(async ({ params }, p) => json(200, { data: await get(p, pathId(params)) }));

  /** `POST` of a new resource, its body checked by `schema`: 201 with what was created. */
  const create = <I, T>(schema: z.ZodType<I>, make: (p: Principal, input: I) => Promise<T>) =>
    authed(async ({ req }, p) => json(201, { data: await make(p, readBody(req, schema)) }));

  router
    .add('POST', '/auth/session', async ({ req }) => {
      if (isCrossSiteWrite(req.headers, cookieOrigins(config, req.headers.host), req.headers.host))
        throw new AppError('origin_not_allowed');
      const { token } = readBody(req, sessionSchema);
      const p = await verifier.verify(token);
      const maxAgeS = Math.max(0, p.exp - Math.floor(Date.now() / 1000));
      return json(200, { data: { userId: p.userId, tenant: p.tenant, role: p.role, name: p.name, exp: p.exp } }, [
        ['Set-Cookie', sessionCookie(config.cookieName, token, { secure: config.cookieSecure, maxAgeS })],
      ]);
    })
    .add('GET', '/auth/session', async ({ req }) => {
      // What the page asks on load: 200 either way, so a signed-out visitor's first request is not
      // a 401 in the browser's console. Already paid for as an /auth/ route (http/dispatch.ts); given back
      // when the session verifies, as the /api routes do.
      const offers = config.devLogin ? { devLogin: true } : {};
      const presented = bearerToken(req.headers.authorization) ?? parseCookies(req.headers.cookie)[config.cookieName];
      if (!presented) return json(200, { data: { authenticated: false, ...offers } });
      let p: Principal;
      try {
        p = (await credentials(req)).principal;
      } catch (err) {
        // The page tells "your session expired" from "it was revoked"; a 5xx (keys unreachable) stays an error.
        if (err instanceof AppError && err.status === 401)
          return json(200, { data: { authenticated: false, reason: err.code, ...offers } });
        throw err;
      }
      void limits.refund('auth', clientIp(req.peer, req.headers, config.trustProxy));
      return json(200, {
        data: { authenticated: true, userId: p.userId, tenant: p.tenant, role: p.role, name: p.name, exp: p.exp, ...offers },
      });
    })
    .add('POST', '/auth/logout', async ({ req }) => {
      const clear: [string, string] = ['Set-Cookie', clearSessionCookie(config.cookieName, config.cookieSecure)];
      let authed: Authed;
      try {
        // Already paid for as an /auth/ route (http/dispatch.ts).
        authed = await credentials(req);
      } catch (err) {
        // Logging out with a dead token still clears the cookie; a cross-site attempt does not.
        if (err instanceof AppError && err.code !== 'origin_not_allowed') return json(200, { data: { revoked: false } }, [clear]);
        throw err;
      }
      await deps.revocations.revoke(authed.principal);
      // On every node (with Redis, through the adapter), each socket told `token_revoked` first.
      disconnectEverywhere(deps.io, revocationRoom(authed.principal.revocationKey), 'token_revoked');
      return json(200, { data: { revoked: true } }, [clear]);
    })
    .add(
      'GET',
      '/api/me',
      authed(async (_ctx, p) => json(200, { data: { userId: p.userId, tenant: p.tenant, role: p.role, name: p.name, exp: p.exp } })),
    )
    .add(
      'GET',
      '/api/workflows',
      authed(async (_ctx, p) => json(200, { data: await service.listWorkflows(p) })),
    )
    .add('POST', '/api/workflows', create(createWorkflowSchema, service.createWorkflow.bind(service)))
    .add('GET', '/api/workflows/:id', byId(service.getWorkflow.bind(service)))
    .add(
      'GET',
      '/api/processes',
      authed(async ({ req }, p) => {
        const page = await service.listProcesses(p, validate(listProcessesQuery, queryObject(req.query)));
        return json(200, { data: page.items, nextCursor: page.nextCursor, ...(page.total !== undefined ? { total: page.total } : {}) });
      }),
    )
    .add('POST', '/api/processes', create(createProcessSchema, service.createProcess.bind(service)))
    .add('GET', '/api/processes/:id', byId(service.getProcess.bind(service)))
    .add(
      'POST',
      '/api/processes/:id/transition',
      authed(
        async ({ req, params }, p) => {
          const body = readBody(req, transitionBodySchema);
          const result = await service.transition(p, { ...body, processId: pathId(params) });
          return json(200, { data: result });
        },
        ['process:transition'],
      ),
    )
    .add(
      'GET',
      '/api/events',
      authed(async ({ req }, p) => {
        const q = validate(eventsQuery, queryObject(req.query));
        if (q.before !== undefined) {
          // Newest first when picking, id order in the answer; `next` pages on backwards (as `before`).
          const { events, more } = await service.eventsBefore(p, q.room, q.after, q.before, q.limit);
          return json(200, { data: events, next: more ? events[0]!.id : null });
        }
        const { events, more } = await service.eventsAfter(p, q.room, q.after, q.limit);
        return json(200, { data: events, next: more ? events[events.length - 1]!.id : null });
      }),
    )
    .add('POST', '/api/publish', async ({ req }) => {
      const publishApiKey = config.publishApiKey;
      if (!publishApiKey) throw new AppError('not_found', 'The publish API is disabled (set PUBLISH_API_KEY).');
      await paid(req, async () => {
        const key = bearerToken(req.headers.authorization);
        if (!key || !safeEqual(key, publishApiKey)) throw new AppError('unauthorized', 'A valid publish API key is required.');
      });
      const raw = readJson(req);
      // A batch is told apart by its `events` key, so each form gets its own, readable, errors.
      if (raw === null || typeof raw !== 'object' || !('events' in raw)) {
        const { requestId, ...one } = validate(publishSchema, raw);
        await limits.consume('publish', 'api');
        const { event, replayed } = await service.publish(one, requestId);
        return json(201, { data: event, replayed });
      }
      const { events, requestId } = validate(publishBatchSchema, raw);
      // Each event of a batch counts against the publish budget.
      await limits.consume('publish', 'api', events.length);
      const published = await service.publishMany(events, requestId);
      return json(201, { data: published.events, replayed: published.replayed });
    });
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
