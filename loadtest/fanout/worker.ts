import type { FluxoEvent } from '../../shared/protocol.js';
import { LeanClient } from '../lean-client.js';
import { encodeHistogram, newHistogram, nowMs, recordUs } from '../stats.js';
import { IdSet } from './id-set.js';
import type { FromWorker, MissingReport, StartMessage, ToWorker } from './messages.js';

/**
 * One client process of the fan-out driver: opens its share of subscribers, records what each
 * receives, reports progress, and at the end checks every subscriber against the ids the
 * publishers committed. Runs as a forked child so clients spread over cores and file limits.
 */

interface Sub {
  client: LeanClient | null;
  roomKey: string;
  ids: IdSet;
}

const send = (m: FromWorker) => process.send?.(m);
const subs: Sub[] = [];
let received = 0;
let duplicates = 0;
let disconnects = 0;
let interval = newHistogram();
let ticker: NodeJS.Timeout | undefined;

function countError(errors: Record<string, number>, err: unknown): void {
  const key = err instanceof Error ? err.message.slice(0, 120) : String(err);
  errors[key] = (errors[key] ?? 0) + 1;
}

async function start(msg: StartMessage): Promise<void> {
  const errors: Record<string, number> = {};
  const connectHist = newHistogram();
  const gapMs = 1000 / Math.max(1, msg.connectRate);
  const t0 = nowMs();
  let connected = 0;
  let failed = 0;
  await Promise.all(
    msg.subscribers.map(async (spec, i) => {
      const wait = t0 + i * gapMs - nowMs();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const sub: Sub = { client: null, roomKey: spec.roomKey, ids: new IdSet() };
      subs.push(sub);
      const began = nowMs();
      try {
        const client = await LeanClient.connect({
          url: msg.url,
          token: spec.token,
          ...(spec.localAddress ? { localAddress: spec.localAddress } : {}),
        });
        sub.client = client;
        let seen = 0;
        const dropAt = i === 0 ? (msg.dropNth ?? 0) : 0;
        client.onClose = () => disconnects++;
        client.onEvent = (name, args) => {
          if (name !== 'event') return;
          const ev = args[0] as FluxoEvent;
          if (++seen === dropAt) return;
          recordUs(interval, (nowMs() - Date.parse(ev.at)) * 1000);
          received++;
          if (!sub.ids.add(ev.id)) duplicates++;
        };
        const ack = await client.request<{ data?: unknown; error?: { code: string } }>('subscribe', { room: spec.room });
        if (ack.error) throw new Error(`subscribe: ${ack.error.code}`);
        recordUs(connectHist, (nowMs() - began) * 1000);
        connected++;
      } catch (err) {
        failed++;
        countError(errors, err);
      }
    }),
  );
  ticker = setInterval(progress, msg.progressMs);
  send({ type: 'ready', connected, failed, connectHist: encodeHistogram(connectHist), errors });
}

function progress(): void {
  const hist = encodeHistogram(interval);
  interval = newHistogram();
  send({ type: 'progress', received, duplicates, disconnects, hist });
}

function finish(expected: Record<string, number[]>): void {
  clearInterval(ticker);
  progress();
  const missing: MissingReport[] = [];
  let missingTotal = 0;
  let matched = 0;
  subs.forEach((sub, i) => {
    const ids = expected[sub.roomKey] ?? [];
    const lost: number[] = [];
    for (const id of ids) {
      if (sub.ids.has(id)) matched++;
      else lost.push(id);
    }
    missingTotal += lost.length;
    if (lost.length) missing.push({ roomKey: sub.roomKey, subscriber: String(i), ids: lost });
  });
  const unexpected = subs.reduce((n, s) => n + s.ids.size, 0) - matched;
  send({ type: 'result', received, duplicates, unexpected, missingTotal, missing });
}

process.on('message', (msg: ToWorker) => {
  if (msg.type === 'start') start(msg).catch((err) => console.error(err));
  else if (msg.type === 'finish') finish(msg.expected);
  else if (msg.type === 'exit') {
    for (const s of subs) s.client?.terminate();
    setTimeout(() => process.exit(0), 50);
  }
});
process.on('disconnect', () => process.exit(0));
