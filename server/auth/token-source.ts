import { isIP } from 'node:net';

/** Where a request's credentials and client address come from. Pure functions, no I/O. */

/** The token of an `Authorization: Bearer <token>` header, or null. The scheme is case-insensitive (RFC 7235). */
export function bearerToken(authorizationHeader?: string): string | null {
  if (!authorizationHeader) return null;
  const match = /^Bearer[ \t]+([A-Za-z0-9\-._~+/]+=*)[ \t]*$/i.exec(authorizationHeader);
  return match?.[1] ?? null;
}

/**
 * Parses a `Cookie` header. The result has no prototype, so a cookie named `__proto__` or
 * `constructor` is just a key. The first occurrence of a name wins (as in the `cookie` package);
 * a value that is not valid percent-encoding is kept as is.
 */
export function parseCookies(header?: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!name || name in out) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out[name] = safeDecode(value);
  }
  return out;
}

function safeDecode(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

const COOKIE_NAME = /^[A-Za-z0-9_-]+$/;

export interface SessionCookieOptions {
  /** Add `Secure` (set behind HTTPS). */
  secure: boolean;
  /** Lifetime; normally the token's remaining lifetime. */
  maxAgeS: number;
}

/**
 * The `Set-Cookie` value carrying the session token. HttpOnly keeps it from page scripts;
 * SameSite=Lax keeps it off cross-site subrequests (cross-site writes are also refused by
 * `isCrossSiteWrite`, since Lax still sends it on top-level navigations).
 */
export function sessionCookie(name: string, token: string, opts: SessionCookieOptions): string {
  if (!COOKIE_NAME.test(name)) throw new Error(`invalid cookie name: ${name}`);
  const maxAge = Math.max(0, Math.floor(opts.maxAgeS));
  return `${name}=${encodeURIComponent(token)}; Max-Age=${maxAge}; Path=/; HttpOnly; SameSite=Lax${opts.secure ? '; Secure' : ''}`;
}

/** The `Set-Cookie` value that deletes the session cookie (same attributes, so browsers match it). */
export function clearSessionCookie(name: string, secure: boolean): string {
  if (!COOKIE_NAME.test(name)) throw new Error(`invalid cookie name: ${name}`);
  return `${name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

/**
 * Whether a page from `origin` may use the session cookie: exact match against ALLOWED_ORIGINS or
 * the node's own origins. A missing Origin or the opaque `null` origin (sandboxed frames, file://)
 * is never allowed.
 */
export function isOriginAllowed(origin: string | undefined, allowed: string[], selfOrigins: string[] = []): boolean {
  if (!origin || origin === 'null') return false;
  return allowed.includes(origin) || selfOrigins.includes(origin);
}

export interface BrowserHeaders {
  origin?: string;
  'sec-fetch-site'?: string;
  referer?: string;
}

/**
 * Which page a cookie-bearing Socket.IO handshake comes from, judged only from headers a page's
 * script cannot set (`Origin`, `Sec-Fetch-Site` and `Referer` are forbidden request headers):
 * - `allowed`: an allowed page (ALLOWED_ORIGINS, or this node's own origin) — the cookie may be used;
 * - `foreign`: another page (or a browser-initiated request that is not a page's) — refuse at once;
 * - `unknown`: nothing says — the cookie is not used (non-browser clients send a token instead).
 *
 * The first header present decides:
 * 1. `Origin`. Browsers send it on every WebSocket handshake and every cross-origin fetch/XHR, so a
 *    cross-site WebSocket (CSWSH) or a cross-origin long-polling request always carries the
 *    attacker's origin (or `null`) and is refused.
 * 2. `Sec-Fetch-Site`, when there is no Origin: a same-origin GET (long-polling's handshake) carries
 *    no Origin (the Fetch standard adds it to GETs only in CORS mode), but browsers send
 *    `Sec-Fetch-Site: same-origin` on it (to potentially trustworthy origins: https, localhost).
 *    Only `same-origin` is taken; `same-site`, `cross-site` and `none` (typed in the address bar)
 *    are refused.
 * 3. `Referer`, when neither is sent (a plain-http page on a LAN host gets no Sec-Fetch-* headers):
 *    its origin must be an allowed one. A foreign page can suppress it (then rule 4) but not set it
 *    to ours.
 * 4. Nothing: `unknown`.
 * What a foreign page can still make a browser send without Origin — an <img>/<script>/<iframe>
 * subresource or a top-level navigation — carries the SameSite=Lax cookie only on a top-level
 * navigation, whose `Sec-Fetch-Site: cross-site` or foreign Referer refuses it, and whose response
 * (the session id) the foreign page could not read anyway.
 * @param allowed exact origins: ALLOWED_ORIGINS and the node's own (`cookieOrigins` in realtime/io.ts)
 */
export function cookiePage(headers: BrowserHeaders, allowed: string[]): 'allowed' | 'foreign' | 'unknown' {
  const self = (origin: string) => isOriginAllowed(origin, allowed);
  if (headers.origin !== undefined) return self(headers.origin) ? 'allowed' : 'foreign';
  const site = headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' ? 'allowed' : 'foreign';
  if (headers.referer !== undefined) {
    const origin = urlOrigin(headers.referer);
    return origin !== null && self(origin) ? 'allowed' : 'foreign';
  }
  return 'unknown';
}

function urlOrigin(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : null;
  } catch {
    return null;
  }
}

/**
 * True when a cookie-authenticated HTTP write comes from another site's page (CSRF).
 * Browsers send Sec-Fetch-Site and/or Origin on writes; a request with neither is taken to be
 * from a non-browser client, which cannot ride on a victim's cookie.
 * @param host the request's Host header, so the node's own page counts as same-origin
 */
export function isCrossSiteWrite(headers: BrowserHeaders, allowed: string[], host?: string): boolean {
  if (headers['sec-fetch-site'] === 'cross-site') return true;
  const origin = headers.origin;
  if (origin === undefined) return false;
  if (isOriginAllowed(origin, allowed)) return false;
  if (host && originHost(origin) === host.toLowerCase()) return false;
  return true;
}

function originHost(origin: string): string | null {
  if (origin === 'null') return null;
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return null;
  }
}

export type HeaderBag = Record<string, string | string[] | undefined>;

/**
 * The client's address. X-Forwarded-For / X-Real-IP are believed only when the direct peer is a
 * trusted proxy; the chain is then walked from the right, skipping trusted proxies, so a client
 * cannot pick its own address by sending a forged X-Forwarded-For (the leftmost entries are
 * whatever the client sent).
 */
export function clientIp(peer: string, headers: HeaderBag, trustProxy: string[]): string {
  if (!trustProxy.includes(peer)) return peer;
  const xff = headerValue(headers['x-forwarded-for']);
  if (xff) {
    const hops = xff
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i] as string;
      if (isIP(hop) === 0) return peer; // garbage in the chain: trust nothing to its left
      if (!trustProxy.includes(hop)) return hop;
    }
    // Every hop is a trusted proxy: the leftmost is the nearest thing to a client we know of.
    return hops[0] ?? peer;
  }
  const real = headerValue(headers['x-real-ip'])?.trim();
  if (real && isIP(real) !== 0) return real;
  return peer;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}
