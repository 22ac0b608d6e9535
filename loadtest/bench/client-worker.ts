import WebSocket from 'ws';
import { LeanClient } from '../lean-client.js';
import { mint } from '../setup.js';
import { encodeHistogram, newHistogram, nowMs, recordUs } from '../stats.js';

/**
 * Bench load generator process: holds subscribers of one engine and counts what they receive.
 * Kept lean on purpose — no JSON parsing per message, only the `"at":"` timestamp is read — so
 * the clients, not the server, are the cheaper side of the measurement.
 */
export type Protocol = 'socket.io' | 'raw';

export type BenchToWorker =
  | {
      type: 'connect';
      url: string;
      protocol: Protocol;
      count: number;
      room: string;
      connectRate: number;
      auth?: { secret: string; tenant: string };
    }
  | { type: 'mark' }
  | { type: 'close' };

export type BenchFromWorker =
  | { type: 'connected'; connected: number; errors: Record<string, number> }
  /** Unsolicited every 20 ms: events received since connect (lets the publisher bound the backlog). */
  | { type: 'count'; received: number }
  | {
      type: 'mark';
      received: number;
      hist: string;
      /** Ids skipped so far, summed over clients: (last id − first id + 1) − received. */
      lost: number;
    };

const send = (m: BenchFromWorker) => process.send?.(m);
let received = 0;
let hist = newHistogram();
let closers: (() => void)[] = [];

/** Per client: first and last event id seen and how many arrived, to count gaps cheaply. */
interface Seen {
  first: number;
  last: number;
  count: number;
}
let seen: Seen[] = [];

/** Reads the ISO `at` and the id without parsing the JSON around them. */
function onMessage(text: string, s: Seen): void {
  received++;
  const j = text.indexOf('"id":');
  if (j >= 0) {
    const id = Number.parseInt(text.slice(j + 5, j + 25), 10);
    if (s.first < 0) s.first = id;
    if (id > s.last) s.last = id;
    s.count++;
  }
  const i = text.indexOf('"at":"');
  if (i >= 0) recordUs(hist, (nowMs() - Date.parse(text.slice(i + 6, i + 30))) * 1000);
}

function connectRaw(url: string, room: string): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false, skipUTF8Validation: true });
    const s = track();
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ subscribe: room })));
    ws.on('message', (raw: Buffer) => {
      const text = raw.toString();
      if (text.startsWith('{"subscribed"')) resolve(() => ws.terminate());
      else onMessage(text, s);
    });
  });
}

async function connectSio(url: string, room: string, token?: string): Promise<() => void> {
  const c = await LeanClient.connect({ url, connectTimeoutMs: 30_000, ...(token ? { token } : {}) });
  const s = track();
  // Count only `event` packets (Fluxo also sends hello and presence diffs).
  c.onRaw = (packet) => {
    if (packet.startsWith('42["event"')) onMessage(packet, s);
    return true;
  };
  const ack = await c.request<{ error?: { code: string } }>('subscribe', { room }, 30_000);
  if (ack?.error) throw new Error(`subscribe: ${ack.error.code}`);
  return () => c.terminate();
}

function track(): Seen {
  const s = { first: -1, last: -1, count: 0 };
  seen.push(s);
  return s;
}

process.on('message', async (m: BenchToWorker) => {
  if (m.type === 'connect') {
    const errors: Record<string, number> = {};
    const gap = 1000 / Math.max(1, m.connectRate);
    const t0 = nowMs();
    const token = m.auth ? await mint(m.auth.secret, 'bench-sub', m.auth.tenant, 'viewer') : undefined;
    await Promise.all(
      Array.from({ length: m.count }, async (_, i) => {
        const wait = t0 + i * gap - nowMs();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        try {
          closers.push(m.protocol === 'raw' ? await connectRaw(m.url, m.room) : await connectSio(m.url, m.room, token));
        } catch (err) {
          const key = err instanceof Error ? err.message.slice(0, 100) : String(err);
          errors[key] = (errors[key] ?? 0) + 1;
        }
      }),
    );
    send({ type: 'connected', connected: closers.length, errors });
  } else if (m.type === 'mark') {
    const lost = seen.reduce((n, s) => n + (s.first < 0 ? 0 : s.last - s.first + 1 - s.count), 0);
    send({ type: 'mark', received, hist: encodeHistogram(hist), lost });
    hist = newHistogram();
  } else if (m.type === 'close') {
    for (const c of closers) c();
    closers = [];
    seen = [];
    received = 0;
    send({ type: 'connected', connected: 0, errors: {} });
  }
});
setInterval(() => {
  if (closers.length) send({ type: 'count', received });
}, 20);
process.on('disconnect', () => process.exit(0));
