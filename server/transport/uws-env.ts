/**
 * uWebSockets.js reads its settings from the environment once, when its native module loads: uws.ts
 * imports this module before uWebSockets.js so that they are set by then. A value already in the
 * environment wins.
 *
 * UWS_HTTP_MAX_HEADERS_SIZE: the bytes of a request's header block uWS accepts; over it uWS answers
 * 431 itself (an HTML page; Fluxo never sees the request). uWS v20.51 defaults to 4 KiB (the older
 * fork took ~256 KiB), which would refuse a token Fluxo accepts (up to 8,192 characters, in the
 * Authorization header or the cookie) with that untyped 431. At 64 KiB such a token fits twice over,
 * and a longer one still reaches Fluxo and gets its typed 401 `token_invalid`.
 */
process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= String(64 * 1024);
