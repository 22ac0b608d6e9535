import type { Socket } from 'socket.io';
import type { ZodType } from 'zod';
import type { Ack, ClientToServerEvents, PresenceState, ServerToClientEvents } from '../../shared/protocol.js';
import { CLIENT_EVENTS } from '../../shared/protocol.js';
import { internalRoom } from '../../shared/rooms.js';
import { presenceUpdateSchema, refreshSchema, subscribeSchema, transitionSchema, unsubscribeSchema } from '../../shared/schemas.js';
import type { Principal } from '../auth/types.js';
import { AppError, toErrorBody } from '../errors.js';
import type { PresenceChange } from '../presence/presence.js';
import type { RealtimeDeps } from './deps.js';

export interface SocketData {
  principal: Principal;
  /** Tenant-relative rooms this socket subscribed to. */
  rooms: Set<string>;
  expiryTimer?: NodeJS.Timeout;
  warnTimer?: NodeJS.Timeout;
}

export type FluxoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** Most replayed events a subscribe ack carries; beyond it the client pages with GET /api/events. */
export const REPLAY_LIMIT = 1000;
const KNOWN = new Set<string>(CLIENT_EVENTS);
/** Tokens living longer than this (setTimeout's limit) are re-armed instead of firing early. */
const MAX_TIMER_MS = 2_147_000_000;

export function revocationRoom(key: string): string {
  return `rk:${key}`;
}

function parse<T>(schema: ZodType<T>, payload: unknown): T {
  const r = schema.safeParse(payload);
  if (!r.success) {
    throw new AppError('validation_failed', undefined, {
      issues: r.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return r.data;
}

/** Wires one authenticated socket: every event is validated, rate limited and answered with a typed ack. */
export function attachHandlers(socket: FluxoSocket, deps: RealtimeDeps): void {
  const { service, presence, limits, metrics, log, verifier, config } = deps;
  const data = socket.data;
  const subject = () => `${data.principal.tenant}:${data.principal.userId}`;

  // Unknown events and oversized messages are answered here, before any handler runs.
  socket.use((packet, next) => {
    const [event, ...args] = packet;
    const ack = typeof args[args.length - 1] === 'function' ? (args[args.length - 1] as (r: Ack<never>) => void) : null;
    if (!KNOWN.has(String(event))) {
      ack?.({ error: { code: 'unknown_event', message: `Unknown event "${String(event).slice(0, 64)}".` } });
      return;
    }
    if (!ack) return; // Every client event expects an ack; without one there is nobody to answer.
    const size = Buffer.byteLength(JSON.stringify(args.slice(0, -1)) ?? '');
    if (size > config.maxPayloadBytes) {
      ack({ error: { code: 'payload_too_large', message: `Messages are limited to ${config.maxPayloadBytes} bytes.` } });
      return;
    }
    next();
  });

  function handle<T, R>(event: (typeof CLIENT_EVENTS)[number], schema: ZodType<T>, fn: (input: T) => Promise<R>) {
    socket.on(
      event as never,
      (async (payload: unknown, ack: (r: Ack<R>) => void) => {
        try {
          await limits.consume(event === 'unsubscribe' ? 'subscribe' : event, subject());
          ack({ data: await fn(parse(schema, payload)) });
        } catch (err) {
          const body = toErrorBody(err);
          if (body.code === 'rate_limited') metrics.rateLimited.inc({ event });
          if (body.code === 'internal')
            log.error(
              { err, event, socket: socket.id, tenant: data.principal.tenant, user: data.principal.userId },
              'socket handler failed',
            );
          ack({ error: body });
        }
      }) as never,
    );
  }

  const broadcastPresence = (room: string, change: PresenceChange) => {
    deps.presenceDiffs.push(internalRoom(data.principal.tenant, room), room, change);
  };

  handle('subscribe', subscribeSchema, async ({ room, after }) => {
    const name = await service.authorizeRoom(data.principal, room);
    const internal = internalRoom(data.principal.tenant, name);
    // Join before reading the replay so nothing committed in between is lost; the client drops duplicates by id.
    socket.join(internal);
    const first = !data.rooms.has(name);
    data.rooms.add(name);
    if (first) {
      broadcastPresence(
        name,
        await presence.join(internal, { connId: socket.id, userId: data.principal.userId, name: data.principal.name }),
      );
    }
    const [members, events, cursor] = await Promise.all([
      presence.snapshot(internal),
      after === undefined ? [] : service.eventsAfter(data.principal, name, after, REPLAY_LIMIT),
      service.latestEventId(data.principal),
    ]);
    return { room: name, presence: members, events, truncated: events.length === REPLAY_LIMIT, cursor };
  });

  handle('unsubscribe', unsubscribeSchema, async ({ room }) => {
    if (!data.rooms.delete(room)) throw new AppError('invalid_room', 'Not subscribed to this room.');
    const internal = internalRoom(data.principal.tenant, room);
    socket.leave(internal);
    broadcastPresence(room, await presence.leave(internal, socket.id));
    return { room };
  });

  handle('presence:update', presenceUpdateSchema, async ({ room, state }) => {
    if (!data.rooms.has(room)) throw new AppError('invalid_room', 'Subscribe to the room first.');
    const internal = internalRoom(data.principal.tenant, room);
    // The sender sees its own update too: it is the confirmation that others see it.
    broadcastPresence(room, await presence.update(internal, socket.id, state as PresenceState));
    return { room };
  });

  handle('process:transition', transitionSchema, (req) => service.transition(data.principal, req));

  handle('auth:refresh', refreshSchema, async ({ token }) => {
    const next = await verifier.verify(token);
    if (next.userId !== data.principal.userId || next.tenant !== data.principal.tenant) {
      throw new AppError('forbidden', 'A refreshed token must be for the same user and tenant.');
    }
    socket.leave(revocationRoom(data.principal.revocationKey));
    data.principal = next;
    socket.join(revocationRoom(next.revocationKey));
    armExpiry(socket);
    return { exp: next.exp };
  });

  socket.on('disconnect', () => {
    metrics.wsConnections.dec();
    clearTimeout(data.expiryTimer);
    clearTimeout(data.warnTimer);
    for (const room of data.rooms) {
      presence
        .leave(internalRoom(data.principal.tenant, room), socket.id)
        .then((change) => broadcastPresence(room, change))
        .catch((err) => log.warn({ err }, 'presence leave failed'));
    }
  });
}

/** Warns a minute ahead, then tells the client and disconnects at `exp` unless a refresh re-armed it. */
export function armExpiry(socket: FluxoSocket): void {
  const data = socket.data;
  clearTimeout(data.expiryTimer);
  clearTimeout(data.warnTimer);
  const inMs = data.principal.exp * 1000 - Date.now();
  if (inMs > MAX_TIMER_MS) {
    data.expiryTimer = setTimeout(() => armExpiry(socket), MAX_TIMER_MS);
    return;
  }
  if (inMs > 60_000) {
    data.warnTimer = setTimeout(() => socket.emit('auth:expiring', { exp: data.principal.exp, inMs: 60_000 }), inMs - 60_000);
  }
  data.expiryTimer = setTimeout(
    () => {
      socket.emit('auth:expired', { exp: data.principal.exp });
      socket.disconnect(true);
    },
    Math.max(0, inMs),
  );
}
