import type { IncomingMessage } from 'node:http';
import { Server } from 'socket.io';
import { ERRORS, type ErrorCode } from '../../shared/errors.js';
import { bearerToken, clientIp, isOriginAllowed, parseCookies } from '../auth/token-source.js';
import type { Config } from '../config/index.js';
import { AppError, toErrorBody } from '../errors.js';
import { LiveCounts } from '../limits/caps.js';
import type { FluxoServer, RealtimeDeps } from './deps.js';
import { armExpiry, type FluxoSocket, revocationRoom, socketHandlers } from './handlers.js';

type ConnectError = Error & { data?: { code: ErrorCode; message: string; retryAfterMs?: number } };

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

export function createIo(config: Config): FluxoServer {
  return new Server({
    // Engine-level hard cap (MAX_HTTP_BUFFER_SIZE); messages over MAX_PAYLOAD_BYTES but below it get a typed ack.
    maxHttpBufferSize: config.maxHttpBufferSize,
    transports: ['websocket', 'polling'],
    pingInterval: config.pingIntervalMs,
    pingTimeout: config.pingTimeoutMs,
    connectTimeout: config.connectTimeoutMs,
    serveClient: false,
    // Cookies are only honoured for allowed origins (checked below); a cross-site WebSocket upgrade
    // is not stopped by CORS, so this gate is the one that matters.
    allowRequest: (req: IncomingMessage, callback) => {
      const headers = req.headers;
      const hasCookie = typeof headers.cookie === 'string' && headers.cookie.includes(`${config.cookieName}=`);
      const origin = typeof headers.origin === 'string' ? headers.origin : undefined;
      if (hasCookie && origin !== undefined && !isOriginAllowed(origin, cookieOrigins(config, headers.host))) {
        return callback(ERRORS.origin_not_allowed.message, false);
      }
      callback(null, true);
    },
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
    metrics.limitRefusals.inc({ limit });
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
      await limits.consumeHandshake(ip).catch((err: unknown) => {
        if (err instanceof AppError && err.code === 'rate_limited') metrics.rateLimited.inc({ event: 'handshake' });
        throw err;
      });
      const auth = socket.handshake.auth as Record<string, unknown> | undefined;
      let token: string | null = typeof auth?.token === 'string' ? auth.token : null;
      token ??= bearerToken(typeof h.authorization === 'string' ? h.authorization : undefined);
      if (!token) {
        const cookie = parseCookies(typeof h.cookie === 'string' ? h.cookie : undefined)[config.cookieName];
        if (cookie) {
          const origin = typeof h.origin === 'string' ? h.origin : undefined;
          if (!isOriginAllowed(origin, cookieOrigins(config, typeof h.host === 'string' ? h.host : undefined))) {
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
  io.on('connection', (socket: FluxoSocket) => {
    metrics.wsConnections.inc();
    socket.once('disconnect', releaseSlots);
    const p = socket.data.principal;
    socket.join(revocationRoom(p.revocationKey));
    attachHandlers(socket);
    armExpiry(socket);
    socket.emit('hello', { nodeId: config.nodeId, userId: p.userId, tenant: p.tenant, role: p.role, exp: p.exp });
  });
}
