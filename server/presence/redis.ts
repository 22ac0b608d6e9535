import type { Cluster, Redis } from 'ioredis';
import type { PresenceMember, PresenceState } from '../../shared/protocol.js';
import {
  isEmptyChange,
  type MembersRead,
  type PresenceChange,
  type PresenceConn,
  type PresenceListener,
  type PresenceStore,
  type RoomSnapshot,
} from './presence.js';

const NONE: PresenceChange = { joins: [], leaves: [], updates: [] };

/*
 * Per room, four hashes sharing one hash tag (so the scripts below touch a single Cluster slot):
 *   pc  "<node>|<connId>" → userId      one field per connection, anywhere in the cluster
 *   pn  userId → connections            a user counts once, `connections` says how many
 *   pm  userId → JSON name
 *   ps  userId → JSON state
 *   pt  present while the last MEMBERS read found the room over its bound in connections (told once per crossing)
 * Per node: `hb:<node>` (expires unless refreshed) and `nrooms:<node>` (rooms it has entries in),
 * so survivors can find and remove a dead node's entries.
 */
const JOIN = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if n == 1 then redis.call('HSET', KEYS[3], ARGV[2], ARGV[3]) end
return {ARGV[2], n, redis.call('HGET', KEYS[3], ARGV[2]) or '', redis.call('HGET', KEYS[4], ARGV[2]) or ''}`;
const LEAVE = `
local user = redis.call('HGET', KEYS[1], ARGV[1])
if not user then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
local n = redis.call('HINCRBY', KEYS[2], user, -1)
if n <= 0 then
  redis.call('HDEL', KEYS[2], user); redis.call('HDEL', KEYS[3], user); redis.call('HDEL', KEYS[4], user)
  return {user, 0, '', ''}
end
return {user, n, redis.call('HGET', KEYS[3], user) or '', redis.call('HGET', KEYS[4], user) or ''}`;
const UPDATE = `
local user = redis.call('HGET', KEYS[1], ARGV[1])
if not user then return false end
redis.call('HSET', KEYS[4], user, ARGV[2])
return {user, tonumber(redis.call('HGET', KEYS[2], user) or '0'), redis.call('HGET', KEYS[3], user) or '', ARGV[2]}`;
// The sizes first (HLEN, O(1)): over the bound (ARGV[1], in connections) nothing else is read — every
// subscribe of a huge room reading its whole list was quadratic.
const SNAPSHOT = `
local users, conns = redis.call('HLEN', KEYS[2]), redis.call('HLEN', KEYS[1])
if conns > tonumber(ARGV[1]) then return {users, conns} end
return {users, conns, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}`;
// {users, connections, crossed over (1/0), rows}; over the bound (ARGV[1]) no row is read, and `pt`
// (KEYS[5]) makes exactly one read per crossing say it crossed, whichever node reads.
const MEMBERS = `
local users, conns = redis.call('HLEN', KEYS[2]), redis.call('HLEN', KEYS[1])
if conns > tonumber(ARGV[1]) then
  if redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[2]) then return {users, conns, 1, {}} end
  redis.call('PEXPIRE', KEYS[5], ARGV[2])
  return {users, conns, 0, {}}
end
redis.call('DEL', KEYS[5])
local out = {}
for i = 3, #ARGV do
  local user = ARGV[i]
  local c = redis.call('HGET', KEYS[2], user)
  if c then out[#out + 1] = {user, tonumber(c), redis.call('HGET', KEYS[3], user) or '', redis.call('HGET', KEYS[4], user) or ''} end
end
return {users, conns, 0, out}`;

/**
 * How long a room's "crossed over the bound" mark outlives the last look at it. A room that empties
 * while over the bound is never looked at again, and its mark would stay in Redis forever; a room
 * still over it but with no presence change for this long is told it crossed once more (one
 * `truncated` diff, which clients already hold).
 */
const OVER_MARK_TTL_MS = 24 * 60 * 60 * 1000;

type Row = [userId: string, connections: number, nameJson: string, stateJson: string];

interface LocalConn {
  room: string;
  userId: string;
  name: string | null;
  state: PresenceState | null;
}

export interface RedisPresenceOptions {
  /** The `state` connection (not a subscriber). */
  redis: Redis | Cluster;
  nodeId: string;
  /** @default 'fluxo' */
  prefix?: string;
  /** A node silent for this long is dead; survivors remove its entries. @default 15_000 */
  ttlMs?: number;
  onError?: (err: unknown, op: string) => void;
}

/**
 * Presence shared by every node through Redis. Each node heartbeats; when a node dies (kill -9),
 * one survivor (elected by a lock) removes its connections and broadcasts the `leave`/`update`
 * diffs, within `ttlMs`. When Redis is unreachable, calls answer from this node's own knowledge
 * and the entries are written again once Redis is back (`reassert`).
 */
export class RedisPresence implements PresenceStore {
  readonly #redis: Redis | Cluster;
  readonly #node: string;
  readonly #prefix: string;
  readonly #ttlMs: number;
  /** Changes this node must broadcast that no client request caused (given to `start`). */
  #onChange: PresenceListener = () => {};
  readonly #onError: (err: unknown, op: string) => void;
  readonly #local = new Map<string, LocalConn>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #inflight = new Set<Promise<unknown>>();
  #beats = 0;
  #closed = false;

  constructor(opts: RedisPresenceOptions) {
    this.#redis = opts.redis;
    this.#node = opts.nodeId;
    this.#prefix = opts.prefix ?? 'fluxo';
    this.#ttlMs = opts.ttlMs ?? 15_000;
    this.#onError = opts.onError ?? (() => {});
  }

  /**
   * Starts heartbeating and watching for dead nodes; removes leftovers of an earlier process with
   * this node id (a restart after a crash must not keep ghosts alive under a fresh heartbeat).
   * Timing: heartbeat every ttl/4, key lives 2/3 ttl, dead nodes looked for every ttl/6 — so a
   * dead node's entries go within ttl, and a live node survives a stall of up to ~ttl/2.
   * `onChange` gets the diffs of the dead nodes' entries this node removes, and of its own entries
   * written again (`reassert`).
   */
  async start(onChange: PresenceListener): Promise<void> {
    this.#onChange = onChange;
    await this.#reap(this.#node).catch((err) => this.#onError(err, 'reap-self'));
    await this.#heartbeat();
    // Tracked, so that close() waits for a beat or reap in progress instead of closing Redis under it.
    this.#timers.push(setInterval(() => void this.#track(this.#heartbeat()), Math.max(100, this.#ttlMs / 4)).unref());
    this.#timers.push(setInterval(() => void this.#track(this.#findDead()), Math.max(100, this.#ttlMs / 6)).unref());
  }

  async join(room: string, conn: PresenceConn): Promise<PresenceChange> {
    const local: LocalConn = { room, userId: conn.userId, name: conn.name, state: null };
    this.#local.set(this.#localKey(room, conn.connId), local);
    try {
      // The room is recorded under this node first, so that if the node dies right after the join,
      // a survivor still finds the entry.
      await this.#track(this.#redis.sadd(this.#key(`nrooms:${this.#node}`), room));
      const row = await this.#track(this.#joinRow(room, conn.connId, local));
      if (!row) return NONE;
      return row[1] === 1 ? { joins: [view(row)], leaves: [], updates: [] } : { joins: [], leaves: [], updates: [view(row)] };
    } catch (err) {
      this.#onError(err, 'join');
      return { joins: [this.#localView(room, conn.userId)], leaves: [], updates: [] };
    }
  }

  async leave(room: string, connId: string): Promise<PresenceChange> {
    const key = this.#localKey(room, connId);
    const local = this.#local.get(key);
    this.#local.delete(key);
    try {
      const row = await this.#track(this.#leaveRow(room, `${this.#node}|${connId}`));
      return row ? changeOf(row) : NONE;
    } catch (err) {
      this.#onError(err, 'leave');
      if (!local) return NONE;
      const left = this.#localView(room, local.userId);
      return left.connections === 0 ? { joins: [], leaves: [local.userId], updates: [] } : { joins: [], leaves: [], updates: [left] };
    }
  }

  async update(room: string, connId: string, state: PresenceState): Promise<PresenceChange> {
    const local = this.#local.get(this.#localKey(room, connId));
    if (local) local.state = state;
    try {
      const keys = this.#roomKeys(room);
      const row = (await this.#track(this.#redis.eval(UPDATE, 4, ...keys, `${this.#node}|${connId}`, JSON.stringify(state)))) as Row | null;
      return row ? { joins: [], leaves: [], updates: [view(row)] } : NONE;
    } catch (err) {
      this.#onError(err, 'update');
      return local ? { joins: [], leaves: [], updates: [this.#localView(room, local.userId)] } : NONE;
    }
  }

  async snapshot(room: string, max: number): Promise<RoomSnapshot> {
    try {
      const [count, connections, counts, names, states] = (await this.#track(
        this.#redis.eval(SNAPSHOT, 4, ...this.#roomKeys(room), max),
      )) as [number, number, string[]?, string[]?, string[]?];
      if (!counts || !names || !states) return { count, connections, members: [] };
      const nameOf = pairs(names);
      const stateOf = pairs(states);
      const members: PresenceMember[] = [];
      for (const [userId, n] of pairs(counts)) {
        members.push(view([userId, Number(n), nameOf.get(userId) ?? '', stateOf.get(userId) ?? '']));
      }
      return { count, connections, members };
    } catch (err) {
      this.#onError(err, 'snapshot');
      const conns = [...this.#local.values()].filter((c) => c.room === room);
      const users = new Set(conns.map((c) => c.userId));
      return {
        count: users.size,
        connections: conns.length,
        members: conns.length > max ? [] : [...users].map((u) => this.#localView(room, u)),
      };
    }
  }

  async members(room: string, userIds: readonly string[], max: number): Promise<MembersRead> {
    try {
      const [count, connections, crossed, rows] = (await this.#track(
        this.#redis.eval(MEMBERS, 5, ...this.#roomKeys(room), this.#overKey(room), max, OVER_MARK_TTL_MS, ...userIds),
      )) as [number, number, number, Row[]];
      return { count, connections, members: new Map(rows.map((row) => [row[0], view(row)])), crossedOver: crossed === 1 };
    } catch (err) {
      // No local answer here: this node knows only its own connections, and a user it holds none of
      // may still be in the room through another node.
      this.#onError(err, 'members');
      throw err;
    }
  }

  /** Writes this node's connections again (after Redis lost them) and broadcasts what that changed. */
  async reassert(): Promise<void> {
    // Registered first: entries of a node missing from `nodes` could never be reaped if it died.
    await this.#redis.set(this.#key(`hb:${this.#node}`), '1', 'PX', this.#hbTtlMs());
    await this.#redis.sadd(this.#key('nodes'), this.#node);
    const byRoom = new Map<string, PresenceChange>();
    for (const [key, local] of this.#local) {
      const connId = key.slice(key.indexOf('\0') + 1);
      let row = await this.#joinRow(local.room, connId, local);
      if (!row) continue;
      if (local.state !== null) {
        const keys = this.#roomKeys(local.room);
        row = (await this.#redis.eval(UPDATE, 4, ...keys, `${this.#node}|${connId}`, JSON.stringify(local.state))) as Row;
      }
      await this.#redis.sadd(this.#key(`nrooms:${this.#node}`), local.room);
      merge(byRoom, local.room, row[1] === 1 && local.state === null ? { joins: [view(row)], leaves: [], updates: [] } : changeOf(row));
    }
    for (const [room, change] of byRoom) if (!isEmptyChange(change)) this.#onChange(room, change);
  }

  /** Stops heartbeating and removes whatever this node still has in Redis. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await Promise.allSettled([...this.#inflight]);
    try {
      await this.#reap(this.#node, false);
      await this.#redis.del(this.#key(`hb:${this.#node}`));
      await this.#redis.srem(this.#key('nodes'), this.#node);
    } catch (err) {
      this.#onError(err, 'close');
    }
    this.#local.clear();
  }

  async #heartbeat(): Promise<void> {
    if (this.#closed) return;
    try {
      const before = await this.#redis.set(this.#key(`hb:${this.#node}`), '1', 'PX', this.#hbTtlMs(), 'GET');
      await this.#redis.sadd(this.#key('nodes'), this.#node);
      // Missing although we beat before: Redis lost it (restart) or we were declared dead (a long
      // stall) and reaped. Either way our connections must be written again.
      if (before === null && this.#beats++ > 0) await this.reassert();
    } catch (err) {
      this.#onError(err, 'heartbeat');
    }
  }

  async #findDead(): Promise<void> {
    if (this.#closed) return;
    try {
      const nodes = await this.#redis.smembers(this.#key('nodes'));
      for (const node of nodes) {
        if (node === this.#node || (await this.#redis.exists(this.#key(`hb:${node}`)))) continue;
        // One survivor does the cleanup and broadcasts it: the others see the lock and skip.
        const won = await this.#redis.set(this.#key(`reap:${node}`), this.#node, 'PX', this.#ttlMs, 'NX');
        if (won !== 'OK') continue;
        await this.#reap(node);
        await this.#redis.srem(this.#key('nodes'), node);
      }
    } catch (err) {
      this.#onError(err, 'reap');
    }
  }

  /** Removes every connection `node` holds; broadcasts the merged diffs per room when `announce`. */
  async #reap(node: string, announce = true): Promise<void> {
    const roomsKey = this.#key(`nrooms:${node}`);
    const rooms = await this.#redis.smembers(roomsKey);
    for (const room of rooms) {
      const [pc] = this.#roomKeys(room);
      const fields = (await this.#redis.hkeys(pc)).filter((f) => f.startsWith(`${node}|`));
      const byRoom = new Map<string, PresenceChange>();
      for (const field of fields) {
        const row = await this.#leaveRow(room, field);
        if (row) merge(byRoom, room, changeOf(row));
      }
      const change = byRoom.get(room);
      if (announce && change && !isEmptyChange(change)) this.#onChange(room, change);
    }
    await this.#redis.del(roomsKey);
  }

  #joinRow(room: string, connId: string, c: LocalConn): Promise<Row | null> {
    const keys = this.#roomKeys(room);
    return this.#redis.eval(JOIN, 4, ...keys, `${this.#node}|${connId}`, c.userId, JSON.stringify(c.name)) as Promise<Row | null>;
  }

  #leaveRow(room: string, field: string): Promise<Row | null> {
    return this.#redis.eval(LEAVE, 4, ...this.#roomKeys(room), field) as Promise<Row | null>;
  }

  #hbTtlMs(): number {
    return Math.max(200, Math.round((this.#ttlMs * 2) / 3));
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = () => this.#inflight.delete(p);
    p.then(done, done);
    return p;
  }

  #localView(room: string, userId: string): PresenceMember {
    const conns = [...this.#local.values()].filter((c) => c.room === room && c.userId === userId);
    const first = conns[0];
    return { userId, name: first?.name ?? null, connections: conns.length, state: conns.find((c) => c.state)?.state ?? null };
  }

  #localKey(room: string, connId: string): string {
    return `${room}\0${connId}`;
  }

  #key(name: string): string {
    return `${this.#prefix}:presence:${name}`;
  }

  /** `pt`: apart from #roomKeys, which the scripts taking four keys spread. */
  #overKey(room: string): string {
    return this.#key(`pt:{${room}}`);
  }

  #roomKeys(room: string): [string, string, string, string] {
    const tag = `{${room}}`;
    return [this.#key(`pc:${tag}`), this.#key(`pn:${tag}`), this.#key(`pm:${tag}`), this.#key(`ps:${tag}`)];
  }
}

function view(row: Row): PresenceMember {
  const [userId, connections, nameJson, stateJson] = row;
  return {
    userId,
    name: nameJson ? (JSON.parse(nameJson) as string | null) : null,
    connections: Number(connections),
    state: stateJson ? (JSON.parse(stateJson) as PresenceState) : null,
  };
}

function changeOf(row: Row): PresenceChange {
  return Number(row[1]) === 0 ? { joins: [], leaves: [row[0]], updates: [] } : { joins: [], leaves: [], updates: [view(row)] };
}

/** Folds a change into the room's pending change: the last word about a user wins. */
function merge(byRoom: Map<string, PresenceChange>, room: string, next: PresenceChange): void {
  const prev = byRoom.get(room) ?? { joins: [], leaves: [], updates: [] };
  const touched = new Set([...next.joins.map((m) => m.userId), ...next.leaves, ...next.updates.map((m) => m.userId)]);
  byRoom.set(room, {
    joins: [...prev.joins.filter((m) => !touched.has(m.userId)), ...next.joins],
    leaves: [...prev.leaves.filter((u) => !touched.has(u)), ...next.leaves],
    updates: [...prev.updates.filter((m) => !touched.has(m.userId)), ...next.updates],
  });
}

function pairs(flat: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i] as string, flat[i + 1] as string);
  return m;
}
