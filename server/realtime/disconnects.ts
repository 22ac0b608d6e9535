import type { Namespace } from 'socket.io';
import { ERRORS, type ErrorCode, isErrorCode } from '../../shared/errors.js';
import type { ServerDisconnect } from '../../shared/protocol.js';
import type { FluxoServer, FluxoSocket } from './deps.js';

/**
 * Every disconnect the server makes goes through here, so that the client is told why first: a
 * `server:disconnect { code, message }` packet is written just before the DISCONNECT packet, on the
 * same connection (Engine.IO flushes what is buffered before it closes the transport), so it
 * always arrives first. Codes come from the catalog (shared/errors.ts): `token_revoked` (logout),
 * `token_expired` (the token's exp passed), `not_ready` (the node is draining), `rate_limited` (a
 * limit, with `retryAfterMs`).
 */

/** Asks the other nodes (through the adapter) to disconnect their sockets of a room. */
const RELAY_EVENT = 'fluxo:disconnect-room';
/** Servers with a cross-node adapter: only they relay (the in-memory adapter cannot, and warns). */
const relaying = new WeakSet<FluxoServer>();

function reasonOf(code: ErrorCode, message?: string, retryAfterMs?: number): ServerDisconnect {
  return { code, message: message ?? ERRORS[code].message, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}

/** Tells one socket why, then disconnects it. */
export function disconnectSocket(socket: FluxoSocket, code: ErrorCode, message?: string, retryAfterMs?: number): void {
  socket.emit('server:disconnect', reasonOf(code, message, retryAfterMs));
  socket.disconnect(true);
}

/** Tells this node's sockets in `room` (every socket of this node when null) why, then disconnects them. */
export function disconnectLocal(io: FluxoServer, room: string | null, code: ErrorCode, message?: string): void {
  const target = room === null ? io.local : io.local.in(room);
  target.emit('server:disconnect', reasonOf(code, message));
  target.disconnectSockets(true);
}

/**
 * The same for the sockets of `room` on every node. This node's are cut at once (also while Redis
 * is away); the other nodes are asked to cut theirs locally, so on each of them too the reason goes
 * out before the cut. (An adapter-wide emit followed by an adapter-wide disconnectSockets are two
 * messages in no guaranteed order: the sharded adapter sends them on different shards.)
 */
export function disconnectEverywhere(io: FluxoServer, room: string, code: ErrorCode, message?: string): void {
  disconnectLocal(io, room, code, message);
  if (relaying.has(io)) mainNamespace(io).serverSideEmit(RELAY_EVENT, room, code, message ?? null);
}

/** Called once the cross-node adapter is in place: carries out the other nodes' `disconnectEverywhere`. */
export function relayDisconnects(io: FluxoServer): void {
  relaying.add(io);
  mainNamespace(io).on(RELAY_EVENT, (room: unknown, code: unknown, message: unknown) => {
    if (typeof room !== 'string' || !isErrorCode(code)) return;
    disconnectLocal(io, room, code, typeof message === 'string' ? message : undefined);
  });
}

/** The main namespace, untyped: FluxoServer declares no server-side events. */
function mainNamespace(io: FluxoServer): Namespace {
  return io.of('/') as unknown as Namespace;
}
