import { describe, expect, it } from 'vitest';
import { DEV_JWT_SECRET, resolveJwtSecret } from '../../server/auth/dev-secret.js';
import {
  bearerToken,
  clearSessionCookie,
  clientIp,
  cookiePage,
  isCrossSiteWrite,
  isOriginAllowed,
  parseCookies,
  sessionCookie,
} from '../../server/auth/token-source.js';

describe('bearerToken', () => {
  it('reads the token of a Bearer header, any case', () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer abc.def-_ghi')).toBe('abc.def-_ghi');
  });
  it.each([undefined, '', 'Basic dXNlcjpwdw==', 'Bearer', 'Bearer ', 'Bearer a b', 'Bearerabc'])('returns null for %j', (h) => {
    expect(bearerToken(h)).toBeNull();
  });
});

describe('parseCookies', () => {
  it('parses pairs, trims, strips quotes and decodes', () => {
    expect({ ...parseCookies('a=1; b = two ; c="q"; d=%41%20b') }).toEqual({ a: '1', b: 'two', c: 'q', d: 'A b' });
  });
  it('keeps the first occurrence of a name', () => {
    expect(parseCookies('s=first; s=second').s).toBe('first');
  });
  it('keeps malformed percent-encoding as is instead of throwing', () => {
    expect(parseCookies('a=%E0%A4%A').a).toBe('%E0%A4%A');
  });
  it('treats __proto__ and constructor as plain keys (no prototype pollution)', () => {
    const jar = parseCookies('__proto__=evil; constructor=x; toString=y');
    expect(Object.getPrototypeOf(jar)).toBeNull();
    expect(Object.entries(jar)).toContainEqual(['__proto__', 'evil']);
    expect(jar.constructor).toBe('x');
    expect(({} as Record<string, unknown>).evil).toBeUndefined();
    expect(parseCookies('a=1').toString).toBeUndefined();
  });
  it('returns an empty jar for nothing or junk', () => {
    expect(Object.keys(parseCookies(undefined))).toEqual([]);
    expect(Object.keys(parseCookies(';;=x; novalue'))).toEqual([]);
  });
});

describe('session cookie', () => {
  it('is HttpOnly, SameSite=Lax, Path=/ and Secure only when asked', () => {
    expect(sessionCookie('fluxo_session', 'a.b.c', { secure: false, maxAgeS: 3600 })).toBe(
      'fluxo_session=a.b.c; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax',
    );
    expect(sessionCookie('s', 't', { secure: true, maxAgeS: 10.7 })).toBe('s=t; Max-Age=10; Path=/; HttpOnly; SameSite=Lax; Secure');
  });
  it('clears with Max-Age=0 and the same attributes', () => {
    expect(clearSessionCookie('s', true)).toMatch(/^s=; Max-Age=0; .*Path=\/; HttpOnly; SameSite=Lax; Secure$/);
  });
  it('refuses a cookie name that could inject attributes', () => {
    expect(() => sessionCookie('a; Domain=evil', 't', { secure: false, maxAgeS: 1 })).toThrow('invalid cookie name: a; Domain=evil');
  });
  it('round-trips through parseCookies', () => {
    const set = sessionCookie('s', 'tok+/=', { secure: false, maxAgeS: 1 });
    expect(parseCookies(set.split(';')[0]).s).toBe('tok+/=');
  });
});

describe('origins', () => {
  const allowed = ['https://app.example.com'];
  it('allows exact matches of the list or of the node itself', () => {
    expect(isOriginAllowed('https://app.example.com', allowed)).toBe(true);
    expect(isOriginAllowed('http://localhost:8080', allowed, ['http://localhost:8080'])).toBe(true);
  });
  it.each([
    undefined,
    'null',
    '',
    'https://app.example.com.evil.com',
    'http://app.example.com',
    'https://APP.example.com/',
  ])('refuses %j', (origin) => {
    expect(isOriginAllowed(origin, allowed)).toBe(false);
  });
});

describe('cookiePage (which page a cookie-bearing Socket.IO handshake comes from)', () => {
  // What cookieOrigins gives: ALLOWED_ORIGINS plus the node's own origin from the Host header.
  const allowed = ['https://app.example.com', 'http://fluxo.local:8080', 'https://fluxo.local:8080'];
  it.each([
    ['an allowed Origin (WebSocket, cross-origin XHR)', { origin: 'https://app.example.com', 'sec-fetch-site': 'same-site' }],
    ['the node’s own Origin', { origin: 'http://fluxo.local:8080', 'sec-fetch-site': 'same-origin' }],
    ['a same-origin long-polling GET: no Origin, Sec-Fetch-Site: same-origin', { 'sec-fetch-site': 'same-origin' }],
    ['a same-origin GET on a plain-http LAN host: only a Referer of this node', { referer: 'http://fluxo.local:8080/?workflow=w1' }],
    ['an allowed page’s Referer', { referer: 'https://app.example.com/board' }],
  ])('allows %s', (_what, headers) => {
    expect(cookiePage(headers, allowed)).toBe('allowed');
  });
  it.each([
    ['a foreign Origin, whatever else is said', { origin: 'https://evil.example.net', 'sec-fetch-site': 'same-origin' }],
    ['the opaque origin', { origin: 'null' }],
    ['an Origin differing only in scheme or port', { origin: 'http://app.example.com' }],
    ['a cross-site request without Origin (a top-level navigation)', { 'sec-fetch-site': 'cross-site' }],
    ['a same-site request without Origin (a sibling subdomain’s <img>)', { 'sec-fetch-site': 'same-site' }],
    ['a request no page made (typed in the address bar)', { 'sec-fetch-site': 'none' }],
    ['Sec-Fetch-Site decides before the Referer', { 'sec-fetch-site': 'cross-site', referer: 'http://fluxo.local:8080/' }],
    ['a foreign Referer', { referer: 'https://evil.example.net/page' }],
    ['a Referer that is no http(s) URL', { referer: 'about:blank' }],
  ])('refuses %s', (_what, headers) => {
    expect(cookiePage(headers, allowed)).toBe('foreign');
  });
  it('says nothing is known when no header names a page (a non-browser client: it must send a token)', () => {
    expect(cookiePage({}, allowed)).toBe('unknown');
  });
});

describe('isCrossSiteWrite', () => {
  const allowed = ['https://app.example.com'];
  it('flags Sec-Fetch-Site: cross-site even with an allowed-looking Origin', () => {
    expect(isCrossSiteWrite({ 'sec-fetch-site': 'cross-site', origin: 'https://app.example.com' }, allowed)).toBe(true);
  });
  it('flags a foreign Origin and the null origin', () => {
    expect(isCrossSiteWrite({ origin: 'https://evil.com' }, allowed, 'fluxo.local:8080')).toBe(true);
    expect(isCrossSiteWrite({ origin: 'null' }, allowed, 'fluxo.local:8080')).toBe(true);
  });
  it('lets allowed origins and the same host through', () => {
    expect(isCrossSiteWrite({ origin: 'https://app.example.com', 'sec-fetch-site': 'same-site' }, allowed)).toBe(false);
    expect(isCrossSiteWrite({ origin: 'http://fluxo.local:8080', 'sec-fetch-site': 'same-origin' }, allowed, 'fluxo.local:8080')).toBe(
      false,
    );
  });
  it('treats a request with neither header as non-browser', () => {
    expect(isCrossSiteWrite({}, allowed, 'fluxo.local')).toBe(false);
    expect(isCrossSiteWrite({ 'sec-fetch-site': 'same-origin' }, allowed)).toBe(false);
  });
});

describe('clientIp', () => {
  const trust = ['127.0.0.1', '10.0.0.2'];
  it('ignores forwarding headers from an untrusted peer', () => {
    expect(clientIp('203.0.113.9', { 'x-forwarded-for': '1.2.3.4', 'x-real-ip': '1.2.3.4' }, trust)).toBe('203.0.113.9');
  });
  it('takes the rightmost untrusted hop, so a forged leftmost entry does not win', () => {
    expect(clientIp('127.0.0.1', { 'x-forwarded-for': '6.6.6.6, 198.51.100.7, 10.0.0.2' }, trust)).toBe('198.51.100.7');
  });
  it('joins repeated X-Forwarded-For headers', () => {
    expect(clientIp('127.0.0.1', { 'x-forwarded-for': ['198.51.100.7', '10.0.0.2'] }, trust)).toBe('198.51.100.7');
  });
  it('falls back to X-Real-IP, then the peer', () => {
    expect(clientIp('127.0.0.1', { 'x-real-ip': '198.51.100.8' }, trust)).toBe('198.51.100.8');
    expect(clientIp('127.0.0.1', { 'x-real-ip': 'not-an-ip' }, trust)).toBe('127.0.0.1');
    expect(clientIp('127.0.0.1', {}, trust)).toBe('127.0.0.1');
  });
  it('stops at a malformed hop instead of trusting what is left of it', () => {
    expect(clientIp('127.0.0.1', { 'x-forwarded-for': '1.1.1.1, garbage' }, trust)).toBe('127.0.0.1');
  });
});

describe('resolveJwtSecret', () => {
  it('prefers JWT_SECRET, yields to JWKS, falls back to the dev secret outside production', () => {
    expect(resolveJwtSecret({ JWT_SECRET: 's'.repeat(32) })).toBe('s'.repeat(32));
    expect(resolveJwtSecret({ JWT_JWKS_URL: 'https://idp/jwks' })).toBeUndefined();
    expect(resolveJwtSecret({ NODE_ENV: 'development' })).toBe(DEV_JWT_SECRET);
    expect(DEV_JWT_SECRET.length).toBeGreaterThanOrEqual(32);
  });
  it('refuses to invent a secret in production', () => {
    expect(() => resolveJwtSecret({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET or JWT_JWKS_URL/);
  });
});
