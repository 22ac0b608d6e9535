import type { HttpRequest, HttpResponse } from '../transport/uws.js';

/**
 * CORS for pages of ALLOWED_ORIGINS, on the HTTP API and on Socket.IO's long-polling. An origin is
 * allowed by exact match only (scheme, host and port; never a pattern, never `null`), and only an
 * allowed one gets `Access-Control-Allow-Origin` — its own value, never `*` — with
 * `Access-Control-Allow-Credentials: true`. Every answer says `Vary: Origin`, since it depends on it.
 *
 * CORS only decides what a foreign page may *read*; what the cookie may *do* is decided apart
 * (`isCrossSiteWrite` for HTTP writes, `cookiePage` for Socket.IO handshakes).
 */

/** Request headers an allowed page may send (a bearer token, a JSON body). */
export const CORS_REQUEST_HEADERS = ['Authorization', 'Content-Type'];
/** Response headers an allowed page may read besides the CORS-safelisted ones. */
export const CORS_EXPOSED_HEADERS = ['Retry-After'];
/** How long a browser may reuse a preflight's answer. */
export const CORS_MAX_AGE_S = 600;

export function isCorsOrigin(origin: string | undefined, allowed: readonly string[]): origin is string {
  return origin !== undefined && origin !== 'null' && allowed.includes(origin);
}

/** Headers added to every HTTP API answer (not to preflights, see `preflight`). */
export function corsHeaders(origin: string | undefined, allowed: readonly string[]): [string, string][] {
  const out: [string, string][] = [['Vary', 'Origin']];
  if (isCorsOrigin(origin, allowed)) {
    out.push(
      ['Access-Control-Allow-Origin', origin],
      ['Access-Control-Allow-Credentials', 'true'],
      ['Access-Control-Expose-Headers', CORS_EXPOSED_HEADERS.join(', ')],
    );
  }
  return out;
}

/**
 * The answer to `OPTIONS` on a route: 204 with `Allow`, and — for a CORS preflight from an allowed
 * origin — the methods of that route and the request headers it may send. A preflight from any other
 * origin gets no Access-Control-Allow-* headers, which the browser takes as a refusal.
 * @param methods the methods the path answers (`Router.methods`)
 */
export function preflight(req: HttpRequest, methods: string[], allowed: readonly string[]): HttpResponse {
  const allow = [...new Set([...methods, ...(methods.includes('GET') ? ['HEAD'] : []), 'OPTIONS'])];
  const headers: [string, string][] = [
    ['Allow', allow.join(', ')],
    ['Vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'],
    ['Cache-Control', 'no-store'],
  ];
  const origin = req.headers.origin;
  if (req.headers['access-control-request-method'] !== undefined && isCorsOrigin(origin, allowed)) {
    headers.push(
      ['Access-Control-Allow-Origin', origin],
      ['Access-Control-Allow-Credentials', 'true'],
      ['Access-Control-Allow-Methods', allow.join(', ')],
      ['Access-Control-Allow-Headers', CORS_REQUEST_HEADERS.join(', ')],
      ['Access-Control-Max-Age', String(CORS_MAX_AGE_S)],
    );
  }
  return { status: 204, headers };
}

/**
 * Options for Engine.IO's `cors` middleware (the `cors` package), per request: the same policy on
 * `/socket.io/`. The package sends `Access-Control-Allow-Credentials` whenever `credentials` is set,
 * so it is set only for an allowed origin; an empty origin list still makes it write `Vary: Origin`.
 */
export function engineCors(allowed: readonly string[], origin: string | undefined) {
  const ok = isCorsOrigin(origin, allowed);
  return {
    origin: ok ? [origin] : ([] as string[]),
    credentials: ok,
    methods: ['GET', 'POST'],
    allowedHeaders: [...CORS_REQUEST_HEADERS],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    maxAge: CORS_MAX_AGE_S,
  };
}
