import type { IncomingMessage } from 'node:http';
import { Server } from 'socket.io';
import { ERRORS, type ErrorCode } from '../../shared/errors.js';
import { bearerToken, clientIp, isOriginAllowed, parseCookies } from '../auth/token-source.js';
import type { Config } from '../config/index.js';
import { AppError, toErrorBody } from '../errors.js';
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
    // Engine-level hard cap; per-event limits are answered with a typed ack below this.
    maxHttpBufferSize: config.maxPayloadBytes * 4,
    transports: ['websocket', 'polling'],
    pingInterval: 25_000,
    pingTimeout: 20_000,
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

/** Authenticates every handshake: auth.token, then a Bearer header, then the cookie (allowed origins only). */
export function installRealtime(deps: RealtimeDeps): void {
  const { io, config, verifier, limits, metrics, log } = deps;
  io.use(async (socket, next) => {
    try {
      const h = socket.handshake.headers;
      const ip = clientIp(socket.handshake.address, h as Record<string, string | undefined>, config.trustProxy);
      await limits.consumeHandshake(ip);
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
      socket.data.principal = await verifier.verify(token);
      // A credential has no business staying in memory for the socket's life (and it is the largest
      // string an idle socket would keep).
      if (auth && typeof auth.token === 'string') delete auth.token;
      next();
    } catch (err) {
      if (!(err instanceof AppError)) log.error({ err }, 'handshake failed');
      else if (err.code === 'rate_limited') metrics.rateLimited.inc({ event: 'handshake' });
      next(connectError(err));
    }
  });

  const attachHandlers = socketHandlers(deps);
  io.on('connection', (socket: FluxoSocket) => {
    metrics.wsConnections.inc();
    const p = socket.data.principal;
    socket.join(revocationRoom(p.revocationKey));
    attachHandlers(socket);
    armExpiry(socket);
    socket.emit('hello', { nodeId: config.nodeId, userId: p.userId, tenant: p.tenant, role: p.role, exp: p.exp });
  });
}
