import type uWS from 'uWebSockets.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { clientIp } from '../auth/token-source.js';
import type { Config } from '../config/index.js';
import { errorResponse } from '../http/respond.js';
import { LiveCounts } from '../limits/caps.js';
import { resolveLimits } from '../limits/parse.js';
import type { Metrics } from '../ops/metrics.js';
import type { FluxoServer } from './deps.js';

/**
 * Limits at the Engine.IO level, before any Socket.IO CONNECT: one IP could otherwise hold any
 * number of sessions that never connect (each a sid, buffers and timers).
 *
 * Both checks are in memory, on this node, and answer without I/O: a session lives on one node, and
 * a WebSocket upgrade request of uWebSockets.js may not be touched once its client has gone, which
 * an answer awaited from Redis could outlive.
 */

/** An Engine.IO request as engine.io's uWebSockets.js server prepares it (userver.ts `prepare`). */
interface EngineRequest extends IncomingMessage {
  _query?: Record<string, string>;
}

/** The part of an engine.io Socket (a session) used here. */
interface EngineSocket {
  request: IncomingMessage;
  transport: { name: string };
  once(event: 'close', fn: (reason: string, description?: unknown) => void): void;
  once(event: 'upgrade', fn: () => void): void;
  on(event: 'packetCreate', fn: (packet: { data?: unknown }) => void): void;
  on(event: 'flush', fn: () => void): void;
  off(event: 'packetCreate' | 'flush', fn: (...args: never[]) => void): void;
  /** `discard`: close at once, without waiting for the queued packets to be sent (they never would be). */
  close(discard?: boolean): void;
}

/** What uWebSockets.js passes to `close` when it cut a frame over `maxPayloadLength`; it sends no close frame (the client sees 1006). */
const FRAME_TOO_BIG = 'Received too big message';
/** What engine.io's long-polling transport reports for a POST over `maxHttpBufferSize` (it answers 413). */
const POST_TOO_BIG = 'payload too large';

function peerOf(req: IncomingMessage): string {
  return (req as { connection?: { remoteAddress?: string } }).connection?.remoteAddress ?? '';
}

/**
 * Caps the live Engine.IO sessions of each client IP (MAX_SESSIONS_PER_IP) and the rate of its
 * handshakes (the `session` budget), answering HTTP 429 `rate_limited` with Retry-After — on the
 * long-polling handshake and on the WebSocket upgrade alike. Counts sessions from 'connection' to
 * 'close', meters polling POSTs over MAX_HTTP_BUFFER_SIZE, and cuts a long-polling session whose
 * unpolled queue passes WS_MAX_BACKPRESSURE_BYTES. Call after `io.attachApp` (the engine
 * exists from then on) and before listening.
 */
export function installEngineLimits(io: FluxoServer, deps: { config: Config; metrics: Metrics }): void {
  const { config, metrics } = deps;
  const sessions = new LiveCounts(config.maxSessionsPerIp);
  const { points, durationS } = resolveLimits(config.rateLimits).session;
  const rate = new RateLimiterMemory({ points, duration: durationS, keyPrefix: 'session' });
  const ipOf = (req: IncomingMessage) => clientIp(peerOf(req), req.headers, config.trustProxy);

  const refuse = (res: ServerResponse, limit: 'sessions_per_ip' | 'session', message: string, retryAfterMs: number) => {
    metrics.httpRefusals.inc({ limit });
    const out = errorResponse({ code: 'rate_limited', message, retryAfterMs });
    res.writeHead(out.status, Object.fromEntries(out.headers ?? []));
    res.end(out.body);
  };

  // Engine.IO middlewares run on every request, before its own checks; only a request without a sid
  // (a handshake, polling or WebSocket) opens a session. Refused here, it never calls `next`.
  io.engine.use((req: EngineRequest, res: ServerResponse, next: (err?: unknown) => void) => {
    if (req._query?.sid) return next();
    const ip = ipOf(req);
    if (sessions.full(ip)) {
      // A slot frees when a session closes: one never connected within CONNECT_TIMEOUT_MS, a dead one within a heartbeat.
      const retryAfterMs = Math.min(config.connectTimeoutMs, config.pingIntervalMs + config.pingTimeoutMs);
      return refuse(
        res,
        'sessions_per_ip',
        `Too many open sessions from this address (MAX_SESSIONS_PER_IP=${sessions.max} per node).`,
        retryAfterMs,
      );
    }
    rate.consume(ip).then(
      () => next(),
      (err: unknown) => {
        if (err instanceof RateLimiterRes) {
          refuse(res, 'session', 'Too many new sessions from this address; retry later.', Math.max(1, Math.ceil(err.msBeforeNext)));
        } else next(); // a limiter fault lets the request through, as createRateLimits does
      },
    );
  });

  io.engine.on('connection', (conn: EngineSocket) => {
    const ip = ipOf(conn.request);
    // Counted even past the cap: handshakes in flight together could all have passed the check.
    sessions.add(ip);
    if (conn.transport.name === 'polling') {
      boundPollingQueue(conn, config.wsMaxBackpressureBytes, () => metrics.wsRefusals.inc({ limit: 'max_backpressure' }));
    }
    conn.once('close', (_reason, description) => {
      sessions.release(ip);
      if (description instanceof Error && description.message === POST_TOO_BIG) {
        metrics.httpRefusals.inc({ limit: 'max_http_buffer_size' });
      }
    });
  });
}

/** Bytes a queued Engine.IO packet will take on the wire (a broadcast's encoded string is shared, not copied). */
function packetBytes(data: unknown): number {
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/**
 * The long-polling side of WS_MAX_BACKPRESSURE_BYTES. Between two polls engine.io queues what a
 * session is sent in its write buffer, and a client that stops polling (a stalled link, a frozen
 * tab, or on purpose) keeps it growing until its ping times out — 45 s of its rooms' traffic per
 * session. Past the bound the session is cut, as a WebSocket is: the client reconnects and resumes
 * from its offsets. A poll takes the whole queue, so the count starts again at every flush; once the
 * session upgrades to a WebSocket, uWebSockets.js bounds it instead.
 */
function boundPollingQueue(conn: EngineSocket, maxBytes: number, onCut: () => void): void {
  let queued = 0;
  const onPacket = (packet: { data?: unknown }) => {
    queued += packetBytes(packet.data);
    if (queued <= maxBytes) return;
    stop();
    onCut();
    // Not inside the send: this runs in the middle of a broadcast to the room's sockets.
    setImmediate(() => conn.close(true));
  };
  const onFlush = () => {
    queued = 0;
  };
  const stop = () => {
    conn.off('packetCreate', onPacket);
    conn.off('flush', onFlush);
  };
  conn.on('packetCreate', onPacket);
  conn.on('flush', onFlush);
  conn.once('upgrade', stop);
  conn.once('close', stop);
}

/**
 * What Fluxo sets on the WebSocket route engine.io registers (engine.io passes uWebSockets.js only
 * its compression, idle timeout and frame size). Wraps `app.ws`, so call before `io.attachApp(app)`.
 *
 * - Frames over MAX_HTTP_BUFFER_SIZE are metered (`onTooBig`). uWebSockets.js refuses them itself:
 *   it closes the connection at once, without a close frame — the client sees 1006 and, with the
 *   rest of the frame unread, often a TCP reset. Nothing can answer more typed than that from
 *   JavaScript, since the frame is refused before any of it reaches JavaScript.
 * - A socket that does not read what it is sent is cut once WS_MAX_BACKPRESSURE_BYTES are queued
 *   for it (`onSlow`). uWebSockets.js's default is to DROP every message sent past its 64 KiB bound
 *   and keep the socket: a hole in the stream nobody is told of — the last events of a burst, an
 *   ack, a presence diff — which a client only notices if a later event of the same room comes.
 *   Cut, the client reconnects and resumes from the offsets it has (the SDK does it), so it gets
 *   everything or knows it is offline. uWebSockets.js shuts the socket's read side and closes it
 *   from the event loop, not inside the send (engine.io may still be writing to it).
 */
export function configureWebSockets(
  app: uWS.TemplatedApp,
  opts: { maxBackpressureBytes: number; onTooBig: () => void; onSlow: () => void },
): void {
  const ws = app.ws.bind(app);
  const slow = new WeakSet<object>();
  app.ws = <UserData>(pattern: uWS.RecognizedString, behavior: uWS.WebSocketBehavior<UserData>) =>
    ws<UserData>(pattern, {
      ...behavior,
      maxBackpressure: opts.maxBackpressureBytes,
      closeOnBackpressureLimit: true,
      dropped: (socket) => {
        // Every send past the bound lands here until the close; the socket counts once.
        const data = socket.getUserData() as object;
        if (slow.has(data)) return;
        slow.add(data);
        opts.onSlow();
      },
      close: (socket, code, message) => {
        if (code === 1006 && Buffer.from(message).toString() === FRAME_TOO_BIG) opts.onTooBig();
        behavior.close?.(socket, code, message);
      },
    });
}
