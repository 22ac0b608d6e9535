import { clientIp } from '../auth/token-source.js';
import type { Config } from '../config/index.js';
import { AppError, toErrorBody } from '../errors.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { HttpHandler, HttpRequest, HttpResponse } from '../transport/uws.js';
import { corsHeaders, preflight } from './cors.js';
import { errorResponse } from './respond.js';
import type { Router } from './router.js';

export interface DispatchDeps {
  router: Router<HttpResponse>;
  config: Pick<Config, 'allowedOrigins' | 'trustProxy'>;
  /** The HTTP view of the budgets (its refusals counted as `http_limit_refusals_total`). */
  limits: RateLimits;
  metrics: Metrics;
  log: Logger;
  /** True once the node drains: writes are refused with `not_ready`, reads still answered. */
  draining: () => boolean;
}

/**
 * Every HTTP request the transport hands over: routed, timed (`http_request_duration_seconds` by
 * route pattern and status), errors turned into the catalog's bodies, CORS headers added.
 */
export function createDispatch(deps: DispatchDeps): HttpHandler {
  const { router, config, limits, metrics, log } = deps;
  const observe = (route: string, res: HttpResponse, started: bigint) =>
    metrics.httpDuration.observe({ route, status: String(res.status) }, Number(process.hrtime.bigint() - started) / 1e9);

  /** Answered for every route (CORS preflights included), before any budget is spent. */
  const options = (req: HttpRequest, started: bigint): HttpResponse => {
    const route = router.methods(req.path);
    const res = route
      ? preflight(req, route.methods, config.allowedOrigins)
      : errorResponse({ code: 'not_found', message: `No route OPTIONS ${req.path}.` });
    observe(route?.pattern ?? 'unmatched', res, started);
    return res;
  };

  return async (req) => {
    const started = process.hrtime.bigint();
    if (req.method === 'OPTIONS') return options(req, started);
    const match = router.match(req.method, req.path);
    let label = 'unmatched';
    let res: HttpResponse;
    try {
      if (!match) throw new AppError('not_found', `No route ${req.method} ${req.path}.`);
      if ('methodNotAllowed' in match) throw new AppError('method_not_allowed');
      label = match.route.pattern;
      if (deps.draining() && req.path.startsWith('/api/') && req.method !== 'GET') throw new AppError('not_ready', 'The node is draining.');
      // Sign-in routes (the demo sign-in included) are unauthenticated by nature: each costs its
      // client IP a point of `auth` before it runs (the /api routes pay in `authenticate`).
      if (label.startsWith('/auth/')) await limits.consume('auth', clientIp(req.peer, req.headers, config.trustProxy));
      res = await match.route.handler({ req, params: match.params });
    } catch (err) {
      const body = toErrorBody(err);
      if (body.code === 'internal') log.error({ err, route: label }, 'request failed');
      res = errorResponse(body);
    }
    observe(label, res, started);
    return { ...res, headers: [...(res.headers ?? []), ...corsHeaders(req.headers.origin, config.allowedOrigins)] };
  };
}
