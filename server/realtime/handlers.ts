import type { ZodType } from 'zod';
import {
  type Ack,
  CLIENT_EVENTS,
  CLIENT_REQUESTS,
  type ClientEventHandlers,
  type ClientEventName,
  type ReplyOf,
  type RequestOf,
} from '../../shared/contract.js';
import { MAX_JSON_DEPTH, screenJson } from '../../shared/json-screen.js';
import type { FluxoEvent, PresenceState } from '../../shared/model.js';
import { internalRoom, parseRoom } from '../../shared/rooms.js';
import { AppError, toErrorBody } from '../errors.js';
import { resolveLimits } from '../limits/parse.js';
import type { PresenceChange } from '../presence/presence.js';
import { screenError, validate } from '../validate.js';
import type { FluxoSocket, RealtimeDeps, ReplayAhead, ReplayPage, SocketData } from './deps.js';
import { disconnectSocket } from './disconnects.js';

// Here for the modules that took them from the handlers (operator.ts, io.ts); they live in deps.ts.
export type { FluxoSocket, SocketData } from './deps.js';

/** Most replayed events a subscribe ack carries; beyond it (`truncated`) the SDK subscribes again from the last id it got. */
export const REPLAY_LIMIT = 1000;
const KNOWN = new Set<string>(CLIENT_EVENTS);
/** Tokens living longer than this (setTimeout's limit) are re-armed instead of firing early. */
const MAX_TIMER_MS = 2_147_000_000;
/** How long before its token expires a socket is sent `auth:expiring`. */
const EXPIRY_WARNING_MS = 60_000;
/** A page read ahead that the client has not asked for by then is dropped (it pins ~1,000 events). */
const REPLAY_AHEAD_MS = 5000;

/**
 * Splits a page so that its JSON stays within `bytes` (at least one event): a replay ack is one
 * message, and one larger than half of WS_MAX_BACKPRESSURE_BYTES would leave a client on a slow link
 * too little room for the live events queued behind it — cut again on every reconnect, it would
 * never get past the page.
 */
export function pageWithin(events: FluxoEvent[], bytes: number): [FluxoEvent[], FluxoEvent[]] {
  let size = 0;
  for (let i = 0; i < events.length; i++) {
    size += JSON.stringify(events[i]).length + 1;
    if (size > bytes && i > 0) return [events.slice(0, i), events.slice(i)];
  }
  return [events, []];
}

export function revocationRoom(key: string): string {
  return `rk:${key}`;
}

/**
 * Builds, once per node, the handlers every authenticated socket shares; the returned function wires
 * one socket. The handlers read their socket from `this` (Socket.IO calls listeners with the socket
 * as `this`) instead of closing over it: a set of closures per socket was a third of an idle
 * socket's heap.
 */
export function socketHandlers(deps: RealtimeDeps): (socket: FluxoSocket) => void {
  const { service, presence, limits, metrics, log, verifier, config } = deps;
  const subject = (socket: FluxoSocket) => `${socket.data.principal.tenant}:${socket.data.principal.userId}`;

  /**
   * The events of one socket run one after another, in arrival order, each answered before the next
   * starts (a subscribe and an unsubscribe sent in one long-polling batch used to interleave, and the
   * unsubscribe was refused); different sockets still run concurrently. Jobs never reject.
   */
  function enqueue(socket: FluxoSocket, job: () => Promise<void> | void): void {
    const data = socket.data;
    const tail = (data.queue ?? Promise.resolve())
      .then(job)
      .catch((err: unknown) => log.warn({ err, socket: socket.id }, 'socket job failed'));
    data.queue = tail;
    void tail.then(() => {
      if (data.queue === tail) data.queue = undefined;
    });
  }

  const budget = resolveLimits(config.rateLimits).events;
  /** A replay ack's JSON at most (see pageWithin). */
  const replayBytes = Math.floor(config.wsMaxBackpressureBytes / 2);
  const windowMs = budget.durationS * 1000;
  /**
   * Spends one point of the socket's `events` budget: a fixed window, in memory and synchronous (a
   * flood must not become a flood of Redis commands, nor be reordered). Returns the milliseconds
   * until the window ends when the budget is spent, else 0.
   */
  function spend(data: SocketData, now: number): number {
    if (data.budgetResetAt === undefined || now >= data.budgetResetAt) {
      data.budgetResetAt = now + windowMs;
      data.budgetUsed = 0;
    }
    data.budgetUsed = (data.budgetUsed ?? 0) + 1;
    return data.budgetUsed > budget.points ? data.budgetResetAt - now : 0;
  }

  /**
   * Every packet, known event or not, valid or not, with an ack or without, first spends one point
   * of the socket's `events` budget; a refused one is answered `rate_limited` (when it has an ack)
   * and goes no further. A socket that sends twice its budget within one window has ignored every
   * retryAfterMs: it is disconnected (told why first), since each refused packet still costs a parse
   * and an answer, and coming back costs it a handshake, which is limited per IP and per user.
   * Unknown events are then answered here (in their turn); packets without an ack have nobody to answer.
   */
  const screen = (socket: FluxoSocket, packet: unknown[], next: (err?: Error) => void) => {
    const event = packet[0];
    const last = packet[packet.length - 1];
    // `421` (an ack id and nothing else) arrives as [ack]: it names no event but still gets an answer.
    const ack = typeof last === 'function' ? (last as (r: Ack<never>) => void) : null;
    const data = socket.data;
    const waitMs = spend(data, Date.now());
    if (waitMs > 0) {
      metrics.wsRefusals.inc({ limit: 'events' });
      if ((data.budgetUsed ?? 0) > 2 * budget.points) {
        if (!socket.connected) return;
        metrics.wsRefusals.inc({ limit: 'events_flood' });
        const { tenant, userId } = data.principal;
        log.warn({ socket: socket.id, tenant, user: userId, ip: data.ip }, 'socket disconnected: events past twice its budget');
        disconnectSocket(socket, 'rate_limited', 'Too many events: disconnected.', waitMs);
        return;
      }
      if (ack) {
        const error = { code: 'rate_limited' as const, message: 'Too many events on this socket; retry later.', retryAfterMs: waitMs };
        enqueue(socket, () => ack({ error }));
      }
      return;
    }
    if (!ack) return;
    if (typeof event !== 'string' || !KNOWN.has(event)) {
      const message = typeof event === 'string' ? `Unknown event "${event.slice(0, 64)}".` : 'The packet names no event.';
      enqueue(socket, () => ack({ error: { code: 'unknown_event', message } }));
      return;
    }
    next();
  };

  const broadcastPresence = (socket: FluxoSocket, room: string, change: PresenceChange) => {
    deps.presenceDiffs.push(internalRoom(socket.data.principal.tenant, room), room, change);
  };

  /** The page the client asks for: read ahead when it is the one after the last truncated page, else read now. */
  function replayPage(socket: FluxoSocket, room: string, after: number): Promise<ReplayPage> {
    const ahead = socket.data.replayAhead;
    socket.data.replayAhead = undefined;
    const read = () => service.eventsAfter(socket.data.principal, room, after, REPLAY_LIMIT);
    if (!ahead || ahead.room !== room || ahead.after !== after) return read();
    // A page read ahead came before the head was read: only a non-empty one is sure to be current.
    return ahead.page.then((page) => (page.events.length > 0 ? page : read()), read);
  }

  /**
   * A client that got a truncated page asks for the next one as soon as it has parsed this one, so
   * the store reads it meanwhile, while the page is on the wire and being parsed (the replay of
   * 10,000 events from PGlite went from ~174 to ~157 ms p50) — or, when the last page was cut to its
   * byte budget, keeps the rest of it. Nothing can be missed by reading early: the socket joined the
   * room before its first read, so whatever commits later arrives live and the client merges by the
   * room's offsets.
   */
  function keepAhead(socket: FluxoSocket, room: string, after: number, rest: ReplayPage | null): void {
    const page = rest ? Promise.resolve(rest) : service.eventsAfter(socket.data.principal, room, after, REPLAY_LIMIT);
    page.catch(() => {}); // replayPage reads again if this failed
    const ahead: ReplayAhead = { room, after, page };
    socket.data.replayAhead = ahead;
    setTimeout(() => {
      if (socket.data.replayAhead === ahead) socket.data.replayAhead = undefined;
    }, REPLAY_AHEAD_MS).unref();
  }

  /**
   * The server's side of the contract (shared/contract.ts): one handler per client event, given the
   * validated request and resolving with its ack's `data`; a handler missing, or a reply of another
   * shape, does not compile. A thrown error becomes the ack's `error`.
   */
  const handlers: ClientEventHandlers<FluxoSocket> = {
    async subscribe(socket, { room, after }) {
      const data = socket.data;
      // Before any read: a socket at its cap costs nothing more (subscribing again to one of its rooms is not one more).
      if ((data.rooms?.size ?? 0) >= config.maxRoomsPerSocket && !data.rooms?.has(parseRoom(room)?.name ?? room)) {
        throw new AppError(
          'too_many_rooms',
          `This connection is in ${data.rooms?.size} rooms already (MAX_ROOMS_PER_SOCKET): unsubscribe from one first.`,
        );
      }
      const name = await service.authorizeRoom(data.principal, room);
      // Gone while the room was checked: its disconnect has already left the rooms it was in, so
      // joining now would leave it in this one (and in its presence) for good.
      if (socket.disconnected) throw new AppError('not_ready', 'The connection closed.');
      const internal = internalRoom(data.principal.tenant, name);
      // Join before reading the replay so nothing committed in between is lost; the client drops repeats by the room's offset.
      socket.join(internal);
      data.rooms ??= new Set();
      const first = !data.rooms.has(name);
      data.rooms.add(name);
      if (first) {
        broadcastPresence(
          socket,
          name,
          await presence.join(internal, { connId: socket.id, userId: data.principal.userId, name: data.principal.name }),
        );
      }
      // The head first, then the replay: a client tells retention's cuts from the two (protocol.ts, rule 5).
      const [{ count, connections, members }, { position, page }] = await Promise.all([
        presence.snapshot(internal, config.presenceMaxConnections),
        service.roomPosition(data.principal, name).then(async (position) => {
          deps.tails?.subscribed(data.principal.tenant, name, position);
          return {
            position,
            page: after === undefined ? { events: [], more: false } : await replayPage(socket, name, after),
          };
        }),
      ]);
      const [events, rest] = pageWithin(page.events, replayBytes);
      const truncated = page.more || rest.length > 0;
      if (truncated) keepAhead(socket, name, events[events.length - 1]!.id, rest.length > 0 ? { events: rest, more: page.more } : null);
      const presenceTruncated = connections > config.presenceMaxConnections;
      return { room: name, presence: members, presenceCount: count, presenceTruncated, events, truncated, position };
    },

    async unsubscribe(socket, { room }) {
      const data = socket.data;
      if (!data.rooms?.delete(room)) throw new AppError('invalid_room', 'Not subscribed to this room.');
      const internal = internalRoom(data.principal.tenant, room);
      socket.leave(internal);
      broadcastPresence(socket, room, await presence.leave(internal, socket.id));
      return { room };
    },

    async 'presence:update'(socket, { room, state }) {
      if (!socket.data.rooms?.has(room)) throw new AppError('invalid_room', 'Subscribe to the room first.');
      const internal = internalRoom(socket.data.principal.tenant, room);
      // The sender sees its own update too: it is the confirmation that others see it.
      broadcastPresence(socket, room, await presence.update(internal, socket.id, state as PresenceState));
      return { room };
    },

    'process:transition': (socket, req) => service.transition(socket.data.principal, req),

    async 'auth:refresh'(socket, { token }) {
      const data = socket.data;
      const next = await verifier.verify(token);
      if (next.userId !== data.principal.userId || next.tenant !== data.principal.tenant) {
        throw new AppError('forbidden', 'A refreshed token must be for the same user and tenant.');
      }
      if (socket.disconnected) throw new AppError('not_ready', 'The connection closed.');
      socket.leave(revocationRoom(data.principal.revocationKey));
      data.principal = next;
      socket.join(revocationRoom(next.revocationKey));
      armExpiry(socket);
      return { exp: next.exp };
    },
  };

  /**
   * Runs one client event in its socket's turn: its budget (`unsubscribe` spends `subscribe`'s),
   * exactly one payload, screened, through the event's schema, then its handler; the ack gets the
   * reply or the error.
   */
  async function run<E extends ClientEventName>(event: E, socket: FluxoSocket, args: unknown[]): Promise<void> {
    // The screen let only packets whose last argument is an ack through.
    const ack = args[args.length - 1] as (r: Ack<ReplyOf<E>>) => void;
    const payloads = args.slice(0, -1);
    try {
      await limits.consume(event === 'unsubscribe' ? 'subscribe' : event, subject(socket));
      if (payloads.length !== 1) {
        throw new AppError('validation_failed', undefined, {
          issues: [{ path: '', message: 'send exactly one payload before the ack' }],
        });
      }
      // Iterative: a recursive measure (JSON.stringify) of `[[[…]]]` 10,000 deep threw outside any try and killed the node.
      const finding = screenJson(payloads[0], { maxDepth: MAX_JSON_DEPTH, maxBytes: config.maxPayloadBytes });
      if (finding) throw screenError(finding, config.maxPayloadBytes);
      // RequestOf<E> is defined as this schema's output; TypeScript cannot follow a generic key through the table.
      const schema = CLIENT_REQUESTS[event] as unknown as ZodType<RequestOf<E>>;
      ack({ data: await handlers[event](socket, validate(schema, payloads[0])) });
    } catch (err) {
      const body = toErrorBody(err);
      if (body.code === 'internal') {
        const { tenant, userId } = socket.data.principal;
        log.error({ err, event, socket: socket.id, tenant, user: userId }, 'socket handler failed');
      }
      ack({ error: body });
    }
  }

  // One listener per client event, built once per node: Socket.IO calls it with the socket as `this`.
  const listeners = CLIENT_EVENTS.map(
    (event) =>
      [
        event,
        function (this: FluxoSocket, ...args: unknown[]) {
          enqueue(this, () => run(event, this, args));
        },
      ] as const,
  );

  function onDisconnect(this: FluxoSocket) {
    const data = this.data;
    metrics.wsConnections.dec();
    clearTimeout(data.expiryTimer);
    data.replayAhead = undefined;
    for (const room of data.rooms ?? []) {
      presence
        .leave(internalRoom(data.principal.tenant, room), this.id)
        .then((change) => broadcastPresence(this, room, change))
        .catch((err) => log.warn({ err }, 'presence leave failed'));
    }
  }

  return (socket) => {
    socket.use((packet, next) => screen(socket, packet, next));
    for (const [event, listener] of listeners) socket.on(event, listener as never);
    socket.on('disconnect', onDisconnect);
  };
}

/**
 * Warns a minute ahead (at once when less is left: a token near its end at connect or refresh), then
 * tells the client and disconnects at `exp` unless a refresh re-armed it.
 */
export function armExpiry(socket: FluxoSocket): void {
  clearTimeout(socket.data.expiryTimer);
  const inMs = socket.data.principal.exp * 1000 - Date.now();
  // One timer per socket, with a shared callback and the socket as its argument: no closure per socket.
  const phase = inMs > MAX_TIMER_MS ? 'rearm' : inMs > 0 ? 'warn' : 'expire';
  const delay = phase === 'rearm' ? MAX_TIMER_MS : phase === 'warn' ? Math.max(0, inMs - EXPIRY_WARNING_MS) : 0;
  socket.data.expiryTimer = setTimeout(onExpiryTimer, delay, socket, phase);
}

function onExpiryTimer(socket: FluxoSocket, phase: 'rearm' | 'warn' | 'expire'): void {
  const { exp } = socket.data.principal;
  if (phase === 'expire') {
    socket.emit('auth:expired', { exp });
    disconnectSocket(socket, 'token_expired');
    return;
  }
  if (phase === 'rearm') {
    armExpiry(socket);
    return;
  }
  const inMs = Math.max(0, exp * 1000 - Date.now());
  socket.emit('auth:expiring', { exp, inMs });
  socket.data.expiryTimer = setTimeout(onExpiryTimer, inMs, socket, 'expire');
}
