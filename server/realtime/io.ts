import type { IncomingMessage } from 'node:http';
import { Server } from 'socket.io';
import type { ConnectError } from '../../shared/contract.js';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { type BrowserHeaders, bearerToken, clientIp, cookiePage, parseCookies } from '../auth/token-source.js';
import type { Config } from '../config/index.js';
import { AppError, toErrorBody } from '../errors.js';
import { engineCors } from '../http/cors.js';
import { LiveCounts } from '../limits/caps.js';
import { resolveLimits } from '../limits/parse.js';
import type { FluxoServer, FluxoSocket, RealtimeDeps } from './deps.js';
import { armExpiry, revocationRoom, socketHandlers } from './handlers.js';

/** The refusal a client gets as `connect_error`, its `data` shaped as the contract says (ConnectErrorData). */
function connectError(err: unknown): ConnectError {
  const body = toErrorBody(err);
  const e: ConnectError = new Error(body.message);
  e.data = { code: body.code, message: body.message, ...(body.retryAfterMs ? { retryAfterMs: body.retryAfterMs } : {}) };
  return e;
}

/** Origins whose pages may use the cookie: the configured ones plus this node's own page. */
export function cookieOrigins(config: Config, host: string | undefined): string[] {
  const self = host ? [`http://${host}`, `https://${host}`] : [];
  return [...config.allowedOrigins, ...self];
}

function browserHeaders(h: IncomingMessage['headers']): BrowserHeaders {
  const one = (v: string | string[] | undefined) => (typeof v === 'string' ? v : undefined);
  return { origin: one(h.origin), 'sec-fetch-site': one(h['sec-fetch-site']), referer: one(h.referer) };
}

export function createIo(config: Config): FluxoServer {
  return new Server({
    // Engine-level hard cap (MAX_HTTP_BUFFER_SIZE); messages over MAX_PAYLOAD_BYTES but below it get a typed ack.
    maxHttpBufferSize: config.maxHttpBufferSize,
    transports: ['websocket', 'polling'],
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    serveClient: false,
    // No transport-level gate on the cookie: a session of its own gets nothing until its CONNECT
    // passes the middleware below, which uses the cookie only from an allowed page (a cross-site
    // WebSocket upgrade is not stopped by CORS) and answers a typed connect_error otherwise. A gate
    // here refused pages of another origin of the same site (the browser sends the Lax cookie
    // along) that authenticate with their own token, with an untyped 403 and a retry loop.
    // Long-polling from the pages of ALLOWED_ORIGINS (exact matches only, with credentials); every
    // answer says `Vary: Origin`. Engine.IO runs this `cors` middleware on uWebSockets.js too
    // (userver.ts buffers its headers), preflight included (204).
    cors: (req, callback) => callback(null, engineCors(config.allowedOrigins, req.headers.origin)),
  });
}

/**
 * Authenticates every handshake: auth.token, then a Bearer header, then the cookie (allowed origins
 * only). Caps the live sockets of each user and of each client IP on this node
 * (MAX_SOCKETS_PER_USER, MAX_SOCKETS_PER_IP): one more is refused with connect_error `rate_limited`.
 */
export function installRealtime(deps: RealtimeDeps): void {
  const { io, config, verifier, limits, metrics, log } = deps;
  const perUser = new LiveCounts(config.maxSocketsPerUser);
  const perIp = new LiveCounts(config.maxSocketsPerIp);
  const userKey = (p: { tenant: string; userId: string }) => `${p.tenant}:${p.userId}`;
  // A slot frees when a socket leaves; a dead peer's is noticed within a heartbeat.
  const capRefusal = (limit: 'sockets_per_user' | 'sockets_per_ip', message: string) => {
    metrics.wsRefusals.inc({ limit });
    return new AppError('rate_limited', message, { retryAfterMs: config.pingIntervalMs + config.pingTimeoutMs });
  };
  const ipFull = () =>
    capRefusal('sockets_per_ip', `Too many open sockets from this address (MAX_SOCKETS_PER_IP=${config.maxSocketsPerIp} per node).`);
  io.use(async (socket, next) => {
    try {
      const h = socket.handshake.headers;
      const ip = clientIp(socket.handshake.address, h as Record<string, string | undefined>, config.trustProxy);
      // Before any work: an address at its cap costs nothing more.
      if (perIp.full(ip)) throw ipFull();
      // A refusal is counted by `limits` (ws_limit_refusals_total{limit="handshake"}).
      await limits.consumeHandshake(ip);
      const auth = socket.handshake.auth as Record<string, unknown> | undefined;
      let token: string | null = typeof auth?.token === 'string' ? auth.token : null;
      token ??= bearerToken(typeof h.authorization === 'string' ? h.authorization : undefined);
      if (!token) {
        const cookie = parseCookies(typeof h.cookie === 'string' ? h.cookie : undefined)[config.cookieName];
        if (cookie) {
          // Only from a page shown to be allowed: a handshake with no Origin, Sec-Fetch-Site or
          // Referer (a non-browser client) does not get to use it.
          if (cookiePage(browserHeaders(h), cookieOrigins(config, typeof h.host === 'string' ? h.host : undefined)) !== 'allowed') {
            throw new AppError('origin_not_allowed');
          }
          token = cookie;
        }
      }
      if (!token) throw new AppError('unauthorized');
      const principal = await verifier.verify(token);
      socket.data.principal = principal;
      // A credential has no business staying in memory for the socket's life (and it is the largest
      // string an idle socket would keep).
      if (auth && typeof auth.token === 'string') delete auth.token;
      // The slots are taken here, synchronously, and freed on `disconnect`: from next() to
      // 'connection' Socket.IO does no I/O, so a socket whose connection is still open now does
      // connect (and later disconnect). Concurrent handshakes of one user cannot overshoot.
      if (socket.conn.readyState !== 'open') return next(new Error('closed during the handshake'));
      if (perIp.full(ip)) throw ipFull();
      if (!perUser.acquire(userKey(principal))) {
        throw capRefusal(
          'sockets_per_user',
          `Too many open sockets for this user (MAX_SOCKETS_PER_USER=${config.maxSocketsPerUser} per node).`,
        );
      }
      perIp.add(ip);
      socket.data.ip = ip;
      next();
    } catch (err) {
      if (!(err instanceof AppError)) log.error({ err }, 'handshake failed');
      next(connectError(err));
    }
  });
  function releaseSlots(this: FluxoSocket) {
    const data = this.data;
    if (data.ip === undefined) return;
    perIp.release(data.ip);
    perUser.release(userKey(data.principal));
    data.ip = undefined;
  }

  const attachHandlers = socketHandlers(deps);
  const { points, durationS } = resolveLimits(config.rateLimits)['auth:refresh'];
  const refreshLimit = { points, durationS };
  io.on('connection', (socket: FluxoSocket) => {
    metrics.wsConnections.inc();
    socket.once('disconnect', releaseSlots);
    const p = socket.data.principal;
    socket.join(revocationRoom(p.revocationKey));
    attachHandlers(socket);
    armExpiry(socket);
    socket.emit('hello', {
      nodeId: config.nodeId,
      userId: p.userId,
      tenant: p.tenant,
      role: p.role,
      exp: p.exp,
      now: Date.now(),
      refreshLimit,
      protocol: PROTOCOL_VERSION,
    });
  });
}
