import { IdSet } from '../id-set.js';
import { LeanClient } from '../lean-client.js';
import { encodeHistogram, newHistogram, nowMs, recordUs } from '../stats.js';
import type { SocketGroup } from './scale-plan.js';

/**
 * The client process of the `scale` suite, forked by scale-clients.ts. Unlike client-worker.ts a
 * socket here subscribes to several rooms (the tenant room, and on some sockets its node's room)
 * and counts the presence traffic it receives, which at this size is the ramp's main cost.
 *
 * Events are not parsed: `"id":`, `"type":"scale.` and the publisher's `"sent":` are read from the
 * text. Latency is send → receipt (the publisher's clock, same machine).
 *
 * Other modules import only types from here: this module is the program.
 */
export const TENANT_EVENT = 'scale.tenant';
export const ROOM_EVENT = 'scale.room';

export type ToScaleWorker =
  | {
      type: 'open';
      url: string;
      groups: SocketGroup[];
      tokens: string[];
      rate: number;
      maxInflight: number;
      timeoutMs: number;
      /** Epoch ms: sockets whose turn comes later are not attempted (the ramp is bounded in time). */
      deadline: number;
    }
  /** Latency histograms since the last mark, per kind of event. */
  | { type: 'mark' }
  /** Each socket's ids against the ids published, per room key (`tenant`, or the node's id). */
  | { type: 'verify'; expected: Record<string, number[]> }
  | { type: 'close' };

export interface ScaleOpened {
  type: 'opened';
  connected: number;
  failed: number;
  /** Not attempted: their turn came after the deadline. */
  skipped: number;
  errors: Record<string, number>;
  /** Connect + every subscribe acked, µs. */
  hist: string;
  seconds: number;
  /** Sockets connected, by the node of their source address as planned. */
  byNode: Record<string, number>;
}

/** Unsolicited every 250 ms. */
export interface ScaleCount {
  type: 'count';
  held: number;
  /** Of `held`, the sockets also in their node's room. */
  inRoom: number;
  failed: number;
  /** Sockets the server closed after they connected. */
  dropped: number;
  events: number;
  presence: number;
  presenceBytes: number;
}

export interface ScaleMark {
  type: 'mark';
  tenant: string;
  room: string;
}

export interface ScaleVerified {
  type: 'verified';
  /** Subscriptions × expected ids not received. */
  missing: number;
  /** Sockets that missed at least one id. */
  socketsMissing: number;
  duplicates: number;
  /** Received ids of a room key that nobody published (another run's traffic). */
  unexpected: number;
}

export type FromScaleWorker = ScaleOpened | ScaleCount | ScaleMark | ScaleVerified | { type: 'closed' };

interface Held {
  reset(): void;
  tenant: IdSet;
  /** The node room's ids; null when this socket is in the tenant room only. */
  room: IdSet | null;
  roomKey: string | null;
}

// After the parent is gone (Ctrl-C) a send would throw EPIPE before 'disconnect' ends this process.
const send = (m: FromScaleWorker) => {
  if (process.connected) process.send?.(m, undefined, undefined, () => {});
};
let held: Held[] = [];
let failed = 0;
let dropped = 0;
let events = 0;
let presence = 0;
let presenceBytes = 0;
let duplicates = 0;
let tenantHist = newHistogram();
let roomHist = newHistogram();

function numberAfter(text: string, key: string): number {
  const i = text.indexOf(key);
  return i < 0 ? Number.NaN : Number.parseFloat(text.slice(i + key.length, i + key.length + 24));
}

function onPacket(text: string, h: Held): boolean {
  if (text.startsWith('42["presence"')) {
    presence++;
    presenceBytes += text.length;
    return true;
  }
  if (!text.startsWith('42["event"')) return true;
  events++;
  const now = nowMs();
  const id = numberAfter(text, '"id":');
  const isRoom = text.includes(`"type":"${ROOM_EVENT}"`);
  const set = isRoom ? h.room : h.tenant;
  if (set && Number.isFinite(id) && !set.add(id)) duplicates++;
  const sent = numberAfter(text, '"sent":');
  if (Number.isFinite(sent)) recordUs(isRoom ? roomHist : tenantHist, (now - sent) * 1000);
  return true;
}

async function connect(url: string, group: SocketGroup, token: string, timeoutMs: number): Promise<Held> {
  const c = await LeanClient.connect({ url, token, localAddress: group.localAddress, connectTimeoutMs: timeoutMs });
  const roomSpec = group.rooms.find((r) => r.name !== 'tenant');
  const h: Held = { reset: () => c.reset(), tenant: new IdSet(), room: roomSpec ? new IdSet() : null, roomKey: roomSpec?.key ?? null };
  c.onRaw = (packet) => onPacket(packet, h);
  try {
    for (const r of group.rooms) {
      const ack = await c.request<{ error?: { code: string } }>('subscribe', { room: r.name }, timeoutMs);
      if (ack?.error) throw new Error(`subscribe ${r.name}: ${ack.error.code}`);
    }
  } catch (err) {
    c.terminate();
    throw err;
  }
  c.onClose = () => dropped++;
  h.reset = () => {
    c.onClose = null;
    c.reset();
  };
  return h;
}

/** Opens every group's sockets at `rate`/s, the groups interleaved so the ramp reaches every node at once. */
async function open(m: Extract<ToScaleWorker, { type: 'open' }>): Promise<void> {
  const order: SocketGroup[] = [];
  const left = m.groups.map((g) => g.count);
  for (let more = true; more; ) {
    more = false;
    m.groups.forEach((g, i) => {
      if (left[i]! > 0) {
        left[i]!--;
        order.push(g);
        more = true;
      }
    });
  }
  const hist = newHistogram();
  const errors: Record<string, number> = {};
  const byNode: Record<string, number> = {};
  let connected = 0;
  let failedHere = 0;
  let skipped = 0;
  let inflight = 0;
  const slots: (() => void)[] = [];
  const release = () => {
    const next = slots.shift();
    if (next) next();
    else inflight--;
  };
  const gap = 1000 / Math.max(1, m.rate);
  const t0 = nowMs();
  await Promise.all(
    order.map(async (g, i) => {
      const wait = t0 + i * gap - nowMs();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // Bounded handshakes in flight: an overload becomes a lower rate, not SYN retransmits (see client-worker.ts).
      if (nowMs() > m.deadline) {
        skipped++;
        return;
      }
      if (inflight >= m.maxInflight) await new Promise<void>((r) => slots.push(r));
      else inflight++;
      if (nowMs() > m.deadline) {
        skipped++;
        release();
        return;
      }
      const began = nowMs();
      try {
        held.push(await connect(m.url, g, m.tokens[i % m.tokens.length]!, m.timeoutMs));
        recordUs(hist, (nowMs() - began) * 1000);
        connected++;
        byNode[g.node] = (byNode[g.node] ?? 0) + 1;
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
  send({
    type: 'opened',
    connected,
    failed: failedHere,
    skipped,
    errors,
    hist: encodeHistogram(hist),
    seconds: (nowMs() - t0) / 1000,
    byNode,
  });
}

function verify(expected: Record<string, number[]>): void {
  let missing = 0;
  let socketsMissing = 0;
  let unexpected = 0;
  const tenantIds = expected.tenant ?? [];
  for (const h of held) {
    let lost = tenantIds.filter((id) => !h.tenant.has(id)).length;
    unexpected += h.tenant.size - (tenantIds.length - lost);
    if (h.room && h.roomKey) {
      const ids = expected[h.roomKey] ?? [];
      const roomLost = ids.filter((id) => !h.room!.has(id)).length;
      unexpected += h.room.size - (ids.length - roomLost);
      lost += roomLost;
    }
    missing += lost;
    if (lost) socketsMissing++;
  }
  send({ type: 'verified', missing, socketsMissing, duplicates, unexpected });
}

process.on('message', (m: ToScaleWorker) => {
  if (m.type === 'open') void open(m);
  else if (m.type === 'mark') {
    send({ type: 'mark', tenant: encodeHistogram(tenantHist), room: encodeHistogram(roomHist) });
    tenantHist = newHistogram();
    roomHist = newHistogram();
  } else if (m.type === 'verify') verify(m.expected);
  else if (m.type === 'close') {
    for (const h of held) h.reset();
    held = [];
    failed = dropped = events = presence = presenceBytes = duplicates = 0;
    send({ type: 'closed' });
  }
});
setInterval(
  () =>
    send({ type: 'count', held: held.length, inRoom: held.filter((h) => h.room).length, failed, dropped, events, presence, presenceBytes }),
  250,
);
// A forked child dies with its parent's IPC channel: nothing outlives an error or a Ctrl-C.
process.on('disconnect', () => process.exit(0));
