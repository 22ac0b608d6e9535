import type { Histogram } from 'hdr-histogram-js';
import WebSocket from 'ws';
import { IdSet } from './id-set.js';
import { LeanClient, resetWebSocket } from './lean-client.js';
import { encodeHistogram, newHistogram, nowMs, recordUs } from './stats.js';

/**
 * The client process of every load tool — `npm run loadtest` (fanout, connections) and every socket
 * suite of `npm run bench`, the 100,000 sockets of `scale` too — forked by clients.ts. Sockets live
 * in processes of their own so that they spread over cores and over the 20,000 files a process may
 * open here, and so that their CPU and memory are never counted as the server's.
 *
 * Lean on purpose: an event is not parsed, only its `"rooms":[`, `"id":` and `"at":"` (or the
 * publisher's `"sent":`) are read, so the clients stay the cheaper side of a measurement. Every
 * subscribed socket keeps the ids it received per room (a bitmap, see id-set.ts), so a run can name
 * each id a socket missed. Presence diffs are only counted: at 100,000 sockets in one tenant room
 * they are the ramp's main cost.
 *
 * Other modules import only types from here: this module is the program.
 */
export type Protocol = 'socket.io' | 'raw';

/** A room a socket subscribes to; `key` names it in the run (the `expected` ids of `verify` are per key). */
export interface RoomSpec {
  name: string;
  key: string;
  /** Its events' latency also goes to the histogram of this name in `mark` (`named`), apart from other rooms'. */
  histogram?: string;
}

/** Sockets alike: from one source address, subscribed to the same rooms (one of the `scale` suite's plan). */
export interface SocketGroup {
  /** The node its source address leads to; the sockets that connected are counted per node. */
  node: string;
  localAddress: string;
  count: number;
  rooms: RoomSpec[];
}

export interface OpenMessage {
  type: 'open';
  url: string;
  protocol: Protocol;
  /** Sockets to add to those this process already holds. */
  count: number;
  /** New sockets per second from this process. */
  rate: number;
  /** Handshakes in flight at most, past which the rate gives way (see open()); none: no bound. */
  maxInflight?: number;
  /**
   * Socket k of this process (counted from the first open after a close) takes entry k % length of
   * each list, so one entry serves every socket. Without a room a socket stays idle (raw sockets
   * need one).
   */
  tokens: string[];
  rooms: RoomSpec[];
  localAddresses: string[];
  /**
   * Instead of `rooms` and `localAddresses`: sockets group by group, the groups interleaved so that a
   * ramp reaches every node at once; a socket subscribes to every room of its group. `count` is then
   * the groups' sum.
   */
  groups?: SocketGroup[];
  /** A connect and each subscribe give up after this. @default 30_000 */
  timeoutMs?: number;
  /** Epoch ms: sockets whose turn comes later are not attempted (a ramp bounded in time). */
  deadline?: number;
  /** Latency from `at`, the commit time (default), or from `sent`, the publisher's clock in the event's data. */
  clock?: 'at' | 'sent';
  /** `verify` only the sockets that connected (a ramp that reports the others on its own). */
  verifyConnectedOnly?: boolean;
  /** Test hook: socket 0 discards the n-th (1-based) event it receives, which must then be reported missing. */
  dropNth?: number;
}

export type ToWorker =
  | OpenMessage
  /** Counts since the first open, and the latency histogram since the last mark. */
  | { type: 'mark' }
  /** Checks every subscribed socket against the ids the publishers were told were committed, per room key. */
  | { type: 'verify'; expected: Record<string, number[]> }
  /** Resets every socket and every count. */
  | { type: 'close' };

export interface OpenedMessage {
  type: 'opened';
  connected: number;
  failed: number;
  /** Not attempted: their turn came after the deadline. */
  skipped: number;
  errors: Record<string, number>;
  /** Sockets connected, per room key they subscribed to, and per node of their group. */
  subscribed: Record<string, number>;
  byNode: Record<string, number>;
  /** Time from starting to connect to the CONNECT ack (and the subscribe ack, with a room), µs histogram. */
  hist: string;
  /** From the first socket's start to the last one's outcome. */
  seconds: number;
  /** Sockets of this process that the server closed since the first open. */
  dropped: number;
}

/** Unsolicited every 20 ms: lets the parent bound a publisher's backlog and show progress. */
export interface CountMessage {
  type: 'count';
  received: number;
  held: number;
  failed: number;
  dropped: number;
  presence: number;
  presenceBytes: number;
}

export interface MarkMessage {
  type: 'mark';
  received: number;
  duplicates: number;
  dropped: number;
  /** Ids skipped so far, summed over sockets: (last id − first id + 1) − received. */
  lost: number;
  /** Commit (or send, see `clock`) → receipt latency of every event since the last mark, µs histogram. */
  hist: string;
  /** The same of the rooms given a `histogram` name, per name. */
  named: Record<string, string>;
}

export interface MissingReport {
  roomKey: string;
  /** The socket's index in its process (the parent prefixes the process index). */
  subscriber: string;
  ids: number[];
}

export interface VerifiedMessage {
  type: 'verified';
  /** Received ids that no publisher reported (someone else's traffic). */
  unexpected: number;
  missingTotal: number;
  missing: MissingReport[];
}

export interface ClosedMessage {
  type: 'closed';
  dropped: number;
}

export type FromWorker = OpenedMessage | CountMessage | MarkMessage | VerifiedMessage | ClosedMessage;

/** What one socket received in one room: ids as a set for `verify`, first and last for counting gaps cheaply. */
interface Sub {
  index: number;
  name: string;
  key: string;
  ids: IdSet;
  first: number;
  last: number;
  count: number;
  hist: Histogram | undefined;
}

// After the parent is gone (Ctrl-C) a send would throw EPIPE before 'disconnect' ends this process.
const send = (m: FromWorker) => {
  if (process.connected) process.send?.(m, undefined, undefined, () => {});
};
let held: (() => void)[] = [];
let subs: Sub[] = [];
/** Sockets attempted since the last close: the next socket's k. */
let attempted = 0;
let received = 0;
let duplicates = 0;
let dropped = 0;
let failed = 0;
let presence = 0;
let presenceBytes = 0;
let hist = newHistogram();
let named = new Map<string, Histogram>();
let clock: OpenMessage['clock'] = 'at';

function numberAfter(text: string, key: string): number {
  const i = text.indexOf(key);
  return i < 0 ? Number.NaN : Number.parseFloat(text.slice(i + key.length, i + key.length + 24));
}

/**
 * The sub of a socket in several rooms that an event belongs to, by the event's `rooms`: a socket
 * gets an event once per room of it that it is in, and each room's ids are checked on their own.
 */
function subOf(text: string, socketSubs: Sub[]): Sub | undefined {
  if (socketSubs.length === 1) return socketSubs[0];
  const i = text.indexOf('"rooms":[');
  const rooms = i < 0 ? '' : text.slice(i + 8, text.indexOf(']', i) + 1);
  return socketSubs.find((s) => rooms.includes(`"${s.name}"`));
}

function onEvent(text: string, socketSubs: Sub[]): void {
  if (!socketSubs.length) return;
  received++;
  const sub = subOf(text, socketSubs);
  if (!sub) return;
  const id = numberAfter(text, '"id":');
  if (Number.isFinite(id)) {
    if (!sub.ids.add(id)) duplicates++;
    if (sub.first < 0) sub.first = id;
    if (id > sub.last) sub.last = id;
    sub.count++;
  }
  let stamp = Number.NaN;
  if (clock === 'sent') stamp = numberAfter(text, '"sent":');
  else {
    const i = text.indexOf('"at":"');
    if (i >= 0) stamp = Date.parse(text.slice(i + 6, i + 30));
  }
  if (Number.isNaN(stamp)) return;
  const us = (nowMs() - stamp) * 1000;
  recordUs(hist, us);
  if (sub.hist) recordUs(sub.hist, us);
}

/** Counts a socket's events, but discards the n-th one when asked to (the dropNth test hook). */
function listener(socketSubs: Sub[], dropNth: number): (text: string) => void {
  if (!dropNth) return (text) => onEvent(text, socketSubs);
  let seen = 0;
  return (text) => {
    if (++seen !== dropNth) onEvent(text, socketSubs);
  };
}

interface Target {
  url: string;
  token: string | undefined;
  rooms: RoomSpec[];
  localAddress: string | undefined;
  timeoutMs: number;
  onEvent: (text: string) => void;
}

/** Resolves with the function that resets the socket. */
function connectRaw(t: Target): Promise<() => void> {
  if (t.rooms.length !== 1) return Promise.reject(new Error('a raw socket needs a room'));
  const room = t.rooms[0]!.name;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/ws`, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      ...(t.localAddress ? { localAddress: t.localAddress } : {}),
    });
    const onClose = () => dropped++;
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ subscribe: room })));
    ws.on('message', (raw: Buffer) => {
      const text = raw.toString();
      if (!text.startsWith('{"subscribed"')) return t.onEvent(text);
      ws.on('close', onClose);
      resolve(() => {
        ws.off('close', onClose);
        resetWebSocket(ws);
      });
    });
  });
}

async function connectSio(t: Target): Promise<() => void> {
  const c = await LeanClient.connect({
    url: t.url,
    connectTimeoutMs: t.timeoutMs,
    ...(t.token ? { token: t.token } : {}),
    ...(t.localAddress ? { localAddress: t.localAddress } : {}),
  });
  // Events are counted per room; of the rest (Fluxo's hello, presence diffs) only presence, as traffic.
  c.onRaw = (packet) => {
    if (packet.startsWith('42["event"')) t.onEvent(packet);
    else if (packet.startsWith('42["presence"')) {
      presence++;
      presenceBytes += packet.length;
    }
    return true;
  };
  for (const r of t.rooms) {
    const ack = await c.request<{ error?: { code: string } }>('subscribe', { room: r.name }, t.timeoutMs).catch((err: Error) => {
      c.terminate();
      throw err;
    });
    if (ack?.error) {
      c.terminate();
      // The room is named only beside others: a run of many one-room sockets counts each refusal once.
      throw new Error(t.rooms.length > 1 ? `subscribe ${r.name}: ${ack.error.code}` : `subscribe: ${ack.error.code}`);
    }
  }
  c.onClose = () => dropped++;
  return () => {
    c.onClose = null;
    c.reset();
  };
}

interface Planned {
  rooms: RoomSpec[];
  localAddress: string | undefined;
  node: string | undefined;
}

/** Socket i's rooms, source address and node: round robin over the lists, or the groups interleaved. */
function plan(m: OpenMessage): Planned[] {
  if (!m.groups) {
    const at = <T>(list: T[], k: number): T | undefined => (list.length ? list[k % list.length] : undefined);
    return Array.from({ length: m.count }, (_, i) => {
      const room = at(m.rooms, attempted + i);
      return { rooms: room ? [room] : [], localAddress: at(m.localAddresses, attempted + i), node: undefined };
    });
  }
  const order: Planned[] = [];
  const left = m.groups.map((g) => g.count);
  for (let more = true; more; ) {
    more = false;
    m.groups.forEach((g, i) => {
      if (left[i]! > 0) {
        left[i]!--;
        order.push({ rooms: g.rooms, localAddress: g.localAddress, node: g.node });
        more = true;
      }
    });
  }
  return order;
}

function namedHistogram(name: string): Histogram {
  if (!named.has(name)) named.set(name, newHistogram());
  return named.get(name)!;
}

async function open(m: OpenMessage): Promise<void> {
  clock = m.clock ?? 'at';
  const planned = plan(m);
  const errors: Record<string, number> = {};
  const subscribed: Record<string, number> = {};
  const byNode: Record<string, number> = {};
  const connectHist = newHistogram();
  const gap = 1000 / Math.max(1, m.rate);
  const first = attempted;
  attempted += planned.length;
  let connected = 0;
  let failedHere = 0;
  let skipped = 0;
  // A late timer tick releases hundreds of due connects at once; past the server's accept backlog
  // the kernel drops SYNs and the client retries after 1 s, then 3 s — connect p99 would then
  // measure SYN retransmits. Bounding the handshakes in flight turns an overload into a lower rate.
  const maxInflight = m.maxInflight ?? Number.POSITIVE_INFINITY;
  const deadline = m.deadline ?? Number.POSITIVE_INFINITY;
  let inflight = 0;
  const slots: (() => void)[] = [];
  const acquire = (): Promise<void> => {
    if (inflight >= maxInflight) return new Promise((r) => slots.push(r));
    inflight++;
    return Promise.resolve();
  };
  const release = () => {
    const next = slots.shift();
    if (next) next();
    else inflight--;
  };
  const t0 = nowMs();
  await Promise.all(
    planned.map(async (p, i) => {
      const k = first + i;
      const socketSubs: Sub[] = p.rooms.map((r) => ({
        index: k,
        name: r.name,
        key: r.key,
        ids: new IdSet(),
        first: -1,
        last: -1,
        count: 0,
        hist: r.histogram === undefined ? undefined : namedHistogram(r.histogram),
      }));
      // Registered before connecting: a socket that never connects misses every event of its rooms.
      if (!m.verifyConnectedOnly) subs.push(...socketSubs);
      const wait = t0 + i * gap - nowMs();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (nowMs() > deadline) {
        skipped++;
        return;
      }
      await acquire();
      if (nowMs() > deadline) {
        skipped++;
        return release();
      }
      const began = nowMs();
      const target: Target = {
        url: m.url,
        token: m.tokens.length ? m.tokens[k % m.tokens.length] : undefined,
        rooms: p.rooms,
        localAddress: p.localAddress,
        timeoutMs: m.timeoutMs ?? 30_000,
        onEvent: listener(socketSubs, k === 0 ? (m.dropNth ?? 0) : 0),
      };
      try {
        held.push(m.protocol === 'raw' ? await connectRaw(target) : await connectSio(target));
        recordUs(connectHist, (nowMs() - began) * 1000);
        connected++;
        if (m.verifyConnectedOnly) subs.push(...socketSubs);
        for (const r of p.rooms) subscribed[r.key] = (subscribed[r.key] ?? 0) + 1;
        if (p.node !== undefined) byNode[p.node] = (byNode[p.node] ?? 0) + 1;
      } catch (err) {
        failedHere++;
        failed++;
        const key = err instanceof Error ? err.message.slice(0, 100) : String(err);
        errors[key] = (errors[key] ?? 0) + 1;
      } finally {
        release();
      }
    }),
  );
  const seconds = (nowMs() - t0) / 1000;
  send({
    type: 'opened',
    connected,
    failed: failedHere,
    skipped,
    errors,
    subscribed,
    byNode,
    hist: encodeHistogram(connectHist),
    seconds,
    dropped,
  });
}

function mark(): void {
  const lost = subs.reduce((n, s) => n + (s.first < 0 ? 0 : s.last - s.first + 1 - s.count), 0);
  const byName = Object.fromEntries([...named].map(([name, h]) => [name, encodeHistogram(h)]));
  send({ type: 'mark', received, duplicates, dropped, lost, hist: encodeHistogram(hist), named: byName });
  hist = newHistogram();
  for (const h of named.values()) h.reset();
}

function verify(expected: Record<string, number[]>): void {
  const missing: MissingReport[] = [];
  let missingTotal = 0;
  let matched = 0;
  let distinct = 0;
  for (const sub of subs) {
    const ids = expected[sub.key] ?? [];
    const lost = ids.filter((id) => !sub.ids.has(id));
    matched += ids.length - lost.length;
    distinct += sub.ids.size;
    missingTotal += lost.length;
    if (lost.length) missing.push({ roomKey: sub.key, subscriber: String(sub.index), ids: lost });
  }
  send({ type: 'verified', unexpected: distinct - matched, missingTotal, missing });
}

function close(): void {
  for (const reset of held) reset();
  const closed = dropped;
  held = [];
  subs = [];
  attempted = received = duplicates = dropped = failed = presence = presenceBytes = 0;
  hist = newHistogram();
  named = new Map();
  send({ type: 'closed', dropped: closed });
}

process.on('message', (m: ToWorker) => {
  if (m.type === 'open') void open(m);
  else if (m.type === 'mark') mark();
  else if (m.type === 'verify') verify(m.expected);
  else if (m.type === 'close') close();
});
setInterval(() => send({ type: 'count', received, held: held.length, failed, dropped, presence, presenceBytes }), 20);
// A forked child dies with its parent's IPC channel: nothing outlives an error or a Ctrl-C.
process.on('disconnect', () => process.exit(0));
