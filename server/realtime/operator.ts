import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ERRORS, type ErrorCode } from '../../shared/errors.js';
import { internalRoom } from '../../shared/rooms.js';
import type { AdminConnection, AdminNode, AdminPresence, AdminRoom } from '../../shared/schemas.js';
import type { Logger } from '../ops/logger.js';
import { type PresenceStore, UNBOUNDED } from '../presence/presence.js';
import type { Survey, SurveyResult } from '../survey/survey.js';
import type { FluxoServer } from './deps.js';
import { disconnectSocket } from './disconnects.js';
import type { FluxoSocket } from './handlers.js';
import type { PresenceDiffs } from './presence-diffs.js';

/**
 * What the operator API (server/http/admin.ts) asks of the cluster. Each question is answered by
 * every node from its own sockets through the survey (server/survey/) and merged here;
 * presence comes from the presence store, which is already shared. Tenants are always explicit:
 * the caller decides which one a request may see.
 */
export interface Operator {
  /** Nodes alive, with their connections (all, or `tenant`'s). */
  nodes(tenant: string | null): Promise<Gathered<AdminNode[]>>;
  /** Rooms of `tenant` with at least one subscribed connection, most connections first. */
  rooms(tenant: string, limit: number): Promise<Gathered<AdminRoom[]> & { truncated: boolean }>;
  presence(tenant: string, room: string): Promise<AdminPresence>;
  connections(tenant: string, userId: string): Promise<Gathered<AdminConnection[]>>;
  /** Tells each socket of the user why (`server:disconnect`), then disconnects it, on every node. */
  disconnect(tenant: string, userId: string, how: { reconnect: boolean; message?: string }): Promise<Gathered<{ connections: number }>>;
  /** Takes each socket of the user out of `room` on every node, then tells it (`server:unsubscribe`). */
  unsubscribe(tenant: string, userId: string, room: string): Promise<Gathered<{ connections: number }>>;
}

export interface Gathered<T> {
  data: T;
  complete: boolean;
  missing: string[];
}

export interface OperatorDeps {
  io: FluxoServer;
  survey: Survey;
  presence: PresenceStore;
  presenceDiffs: PresenceDiffs;
  log: Logger;
}

/** [room, connections, user ids] of one node. */
type RoomTally = [string, number, string[]];

/** Peers send these as the survey's arguments; what a handler reads is checked, not trusted to be typed. */
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const field = (arg: unknown, key: string): unknown => (arg && typeof arg === 'object' ? (arg as Record<string, unknown>)[key] : undefined);

export function createOperator(deps: OperatorDeps): Operator {
  const { io, survey, presence, presenceDiffs, log } = deps;

  /** This node's sockets of a tenant (of one user, when given). A scan: operator calls are rare, sockets many, and no index is kept per user for them. */
  function* local(tenant: string, userId?: string): Generator<FluxoSocket> {
    for (const socket of io.of('/').sockets.values() as Iterable<FluxoSocket>) {
      const p = socket.data.principal;
      if (p && p.tenant === tenant && (userId === undefined || p.userId === userId)) yield socket;
    }
  }

  survey.handle('node', (arg) => {
    const tenant = field(arg, 'tenant');
    // Null from the operator key: every connection of the node.
    const connections = typeof tenant === 'string' ? [...local(tenant)].length : io.of('/').sockets.size;
    return { version: survey.self.version, startedAt: survey.self.startedAt, connections };
  });

  survey.handle('rooms', (arg): RoomTally[] => {
    const rooms = new Map<string, { connections: number; users: Set<string> }>();
    for (const socket of local(str(field(arg, 'tenant')))) {
      for (const room of socket.data.rooms ?? []) {
        const r = rooms.get(room) ?? { connections: 0, users: new Set<string>() };
        rooms.set(room, r);
        r.connections++;
        r.users.add(socket.data.principal.userId);
      }
    }
    return [...rooms].map(([room, r]) => [room, r.connections, [...r.users]]);
  });

  survey.handle('connections', (arg): AdminConnection[] =>
    [...local(str(field(arg, 'tenant')), str(field(arg, 'userId')))].map((socket) => ({
      id: socket.id,
      nodeId: survey.self.nodeId,
      transport: socket.conn.transport.name,
      address: socket.data.ip ?? null,
      connectedAt: new Date(socket.handshake.issued).toISOString(),
      role: socket.data.principal.role,
      tokenExpiresAt: new Date(socket.data.principal.exp * 1000).toISOString(),
      rooms: [...(socket.data.rooms ?? [])],
    })),
  );

  survey.handle('disconnect', (arg) => {
    const code: ErrorCode = field(arg, 'reconnect') === true ? 'reconnect_requested' : 'disconnected_by_operator';
    const message = field(arg, 'message');
    let n = 0;
    for (const socket of [...local(str(field(arg, 'tenant')), str(field(arg, 'userId')))]) {
      disconnectSocket(socket, code, typeof message === 'string' ? message : undefined);
      n++;
    }
    return { connections: n };
  });

  survey.handle('unsubscribe', async (arg) => {
    const room = str(field(arg, 'room'));
    // Every socket of the user, not only those in the room now: one whose subscribe to it is queued
    // or running is in the room by its turn, and leaves it then.
    const sockets = [...local(str(field(arg, 'tenant')), str(field(arg, 'userId')))];
    const left = await Promise.all(sockets.map((socket) => inTurn(socket, () => leaveRoom(socket, room))));
    return { connections: left.filter(Boolean).length };
  });

  /**
   * Takes the socket out of the room the way its own `unsubscribe` would (handlers.ts), then tells
   * it: having left first, no event of the room can follow the notice on this connection.
   */
  async function leaveRoom(socket: FluxoSocket, room: string): Promise<boolean> {
    const data = socket.data;
    if (!socket.connected || !data.rooms?.delete(room)) return false;
    const internal = internalRoom(data.principal.tenant, room);
    socket.leave(internal);
    socket.emit('server:unsubscribe', { room, code: 'unsubscribed_by_operator', message: ERRORS.unsubscribed_by_operator.message });
    presenceDiffs.push(internal, room, await presence.leave(internal, socket.id));
    return true;
  }

  /**
   * Runs `job` in the socket's turn: after the events it is still working on (handlers.ts runs a
   * socket's events one after another through `data.queue`), so it cannot land between a
   * `subscribe`'s join and its presence entry and leave a ghost member. Same contract: the queue's
   * tail never rejects and is cleared once idle.
   */
  function inTurn<T>(socket: FluxoSocket, job: () => Promise<T>): Promise<T> {
    const data = socket.data;
    const run = (data.queue ?? Promise.resolve()).then(job);
    const tail = run.then(
      () => {},
      (err: unknown) => log.warn({ err, socket: socket.id }, 'operator job failed'),
    );
    data.queue = tail;
    void tail.then(() => {
      if (data.queue === tail) data.queue = undefined;
    });
    return run;
  }

  const gathered = <R, T>(r: SurveyResult<R>, data: T): Gathered<T> => ({ data, complete: r.missing.length === 0, missing: r.missing });
  // Answers come from peers: a peer of another version may answer another shape, which counts as nothing.
  const total = (r: SurveyResult<{ connections: number }>) =>
    r.answers.reduce((n, a) => n + (typeof a.result?.connections === 'number' ? a.result.connections : 0), 0);

  return {
    async nodes(tenant) {
      const r = await survey.ask<{ version: string; startedAt: string; connections: number }>('node', { tenant });
      const data = r.answers.map(({ nodeId, result }) => ({ nodeId, ...result, self: nodeId === survey.self.nodeId }));
      return gathered(r, data);
    },

    async rooms(tenant, limit) {
      const r = await survey.ask<RoomTally[]>('rooms', { tenant });
      const merged = new Map<string, { connections: number; users: Set<string> }>();
      for (const { result } of r.answers) {
        for (const [room, connections, users] of Array.isArray(result) ? result : []) {
          const m = merged.get(room) ?? { connections: 0, users: new Set<string>() };
          m.connections += connections;
          for (const u of users) m.users.add(u);
          merged.set(room, m);
        }
      }
      const rooms = [...merged]
        .map(([room, m]) => ({ room, users: m.users.size, connections: m.connections }))
        .sort((a, b) => b.connections - a.connections || a.room.localeCompare(b.room));
      return { ...gathered(r, rooms.slice(0, limit)), truncated: rooms.length > limit };
    },

    async presence(tenant, room) {
      // The whole list, however long: one read an operator asked for, not one per subscriber.
      const { members } = await presence.snapshot(internalRoom(tenant, room), UNBOUNDED);
      members.sort((a, b) => a.userId.localeCompare(b.userId));
      return { room, users: members.length, connections: members.reduce((n, m) => n + m.connections, 0), members };
    },

    async connections(tenant, userId) {
      const r = await survey.ask<AdminConnection[]>('connections', { tenant, userId });
      return gathered(
        r,
        r.answers.flatMap((a) => (Array.isArray(a.result) ? a.result : [])),
      );
    },

    async disconnect(tenant, userId, how) {
      const r = await survey.ask<{ connections: number }>('disconnect', { tenant, userId, ...how });
      return gathered(r, { connections: total(r) });
    },

    async unsubscribe(tenant, userId, room) {
      const r = await survey.ask<{ connections: number }>('unsubscribe', { tenant, userId, room });
      return gathered(r, { connections: total(r) });
    },
  };
}

/**
 * The version of Fluxo this node runs: package.json's, found upwards from this file (from the
 * sources or from a compiled `dist/`, which may hold a package.json of its own).
 */
export function fluxoVersion(from = import.meta.dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'fluxo' && typeof pkg.version === 'string') return pkg.version;
      } catch {
        // Unreadable: not ours, look further up.
      }
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
