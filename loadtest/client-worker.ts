import WebSocket from 'ws';
import { IdSet } from './id-set.js';
import { LeanClient, resetWebSocket } from './lean-client.js';
import { encodeHistogram, newHistogram, nowMs, recordUs } from './stats.js';

/**
 * The client process of every load tool — `npm run loadtest` (fanout, connections) and every socket
 * suite of `npm run bench` — forked by clients.ts. Sockets live in processes of their own so that
 * they spread over cores and over the 20,000 files a process may open here, and so that their CPU
 * and memory are never counted as the server's.
 *
 * Lean on purpose: an event is not parsed, only its `"id":` and `"at":"` are read, so the clients
 * stay the cheaper side of a measurement. Every subscribed socket keeps the ids it received (a
 * bitmap, see id-set.ts), so a run can name each id a socket missed.
 *
 * Other modules import only types from here: this module is the program.
 */
export type Protocol = 'socket.io' | 'raw';

/** A room a socket subscribes to; `key` names it in the run (the `expected` ids of `verify` are per key). */
export interface RoomSpec {
  name: string;
  key: string;
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
  errors: Record<string, number>;
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
}

export interface MarkMessage {
  type: 'mark';
  received: number;
  duplicates: number;
  dropped: number;
  /** Ids skipped so far, summed over sockets: (last id − first id + 1) − received. */
  lost: number;
  /** Commit → receipt latency of every event since the last mark, µs histogram. */
  hist: string;
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

/** What one socket received: ids as a set for `verify`, first and last for counting gaps cheaply. */
interface Sub {
  index: number;
  key: string;
  ids: IdSet;
  first: number;
  last: number;
  count: number;
}

const send = (m: FromWorker) => process.send?.(m);
let held: (() => void)[] = [];
let subs: Sub[] = [];
/** Sockets attempted since the last close: the next socket's k. */
let attempted = 0;
let received = 0;
let duplicates = 0;
let dropped = 0;
let failed = 0;
let hist = newHistogram();

function onEvent(text: string, sub: Sub): void {
  received++;
  const j = text.indexOf('"id":');
  if (j >= 0) {
    const id = Number.parseInt(text.slice(j + 5, j + 25), 10);
    if (!sub.ids.add(id)) duplicates++;
    if (sub.first < 0) sub.first = id;
    if (id > sub.last) sub.last = id;
    sub.count++;
  }
  const i = text.indexOf('"at":"');
  if (i >= 0) recordUs(hist, (nowMs() - Date.parse(text.slice(i + 6, i + 30))) * 1000);
}

/** Counts a socket's events, but discards the n-th one when asked to (the dropNth test hook). */
function listener(sub: Sub, dropNth: number): (text: string) => void {
  if (!dropNth) return (text) => onEvent(text, sub);
  let seen = 0;
  return (text) => {
    if (++seen !== dropNth) onEvent(text, sub);
  };
}

interface Target {
  url: string;
  token: string | undefined;
  room: string | undefined;
  localAddress: string | undefined;
  onEvent: ((text: string) => void) | undefined;
}

/** Resolves with the function that resets the socket. */
function connectRaw(t: Target): Promise<() => void> {
  if (!t.room || !t.onEvent) return Promise.reject(new Error('a raw socket needs a room'));
  const { room, onEvent } = t;
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
      if (!text.startsWith('{"subscribed"')) return onEvent(text);
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
    connectTimeoutMs: 30_000,
    ...(t.token ? { token: t.token } : {}),
    ...(t.localAddress ? { localAddress: t.localAddress } : {}),
  });
  if (t.room && t.onEvent) {
    const { onEvent } = t;
    // Count only `event` packets (Fluxo also sends hello and presence diffs).
    c.onRaw = (packet) => {
      if (packet.startsWith('42["event"')) onEvent(packet);
      return true;
    };
    const ack = await c.request<{ error?: { code: string } }>('subscribe', { room: t.room }, 30_000);
    if (ack?.error) {
      c.terminate();
      throw new Error(`subscribe: ${ack.error.code}`);
    }
  }
  c.onClose = () => dropped++;
  return () => {
    c.onClose = null;
    c.reset();
  };
}

async function open(m: OpenMessage): Promise<void> {
  const errors: Record<string, number> = {};
  const connectHist = newHistogram();
  const gap = 1000 / Math.max(1, m.rate);
  const first = attempted;
  attempted += m.count;
  let connected = 0;
  let failedHere = 0;
  // A late timer tick releases hundreds of due connects at once; past the server's accept backlog
  // the kernel drops SYNs and the client retries after 1 s, then 3 s — connect p99 would then
  // measure SYN retransmits. Bounding the handshakes in flight turns an overload into a lower rate.
  const maxInflight = m.maxInflight ?? Number.POSITIVE_INFINITY;
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
  const at = <T>(list: T[], k: number): T | undefined => (list.length ? list[k % list.length] : undefined);
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: m.count }, async (_, i) => {
      const k = first + i;
      const room = at(m.rooms, k);
      // Registered before connecting: a socket that never connects misses every event of its room.
      const sub = room ? { index: k, key: room.key, ids: new IdSet(), first: -1, last: -1, count: 0 } : undefined;
      if (sub) subs.push(sub);
      const wait = t0 + i * gap - nowMs();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await acquire();
      const began = nowMs();
      const target: Target = {
        url: m.url,
        token: at(m.tokens, k),
        room: room?.name,
        localAddress: at(m.localAddresses, k),
        onEvent: sub ? listener(sub, k === 0 ? (m.dropNth ?? 0) : 0) : undefined,
      };
      try {
        held.push(m.protocol === 'raw' ? await connectRaw(target) : await connectSio(target));
        recordUs(connectHist, (nowMs() - began) * 1000);
        connected++;
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
  send({ type: 'opened', connected, failed: failedHere, errors, hist: encodeHistogram(connectHist), seconds, dropped });
}

function mark(): void {
  const lost = subs.reduce((n, s) => n + (s.first < 0 ? 0 : s.last - s.first + 1 - s.count), 0);
  send({ type: 'mark', received, duplicates, dropped, lost, hist: encodeHistogram(hist) });
  hist = newHistogram();
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
  attempted = received = duplicates = dropped = failed = 0;
  hist = newHistogram();
  send({ type: 'closed', dropped: closed });
}

process.on('message', (m: ToWorker) => {
  if (m.type === 'open') void open(m);
  else if (m.type === 'mark') mark();
  else if (m.type === 'verify') verify(m.expected);
  else if (m.type === 'close') close();
});
setInterval(() => send({ type: 'count', received, held: held.length, failed }), 20);
// A forked child dies with its parent's IPC channel: nothing outlives an error or a Ctrl-C.
process.on('disconnect', () => process.exit(0));
