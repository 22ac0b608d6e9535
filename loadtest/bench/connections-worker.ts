import type { Socket } from 'node:net';
import { LeanClient } from '../lean-client.js';
import { encodeHistogram, newHistogram, nowMs, recordUs } from '../stats.js';

/**
 * Holds idle sockets for the `connections` suite, in a process of its own: a process may open at
 * most ~20,000 files here, and the clients' CPU and memory must not be counted as the server's.
 */
export type ConnectionsToWorker =
  | {
      type: 'open';
      url: string;
      /** Sockets to add to those this worker already holds. */
      count: number;
      /** New sockets per second from this worker. */
      rate: number;
      token?: string;
      /** Subscribe each socket to this room after connecting. */
      room?: string;
      /** Loopback source addresses to spread sockets over (more than ~28,000 per address exhaust the ephemeral ports). */
      localAddresses: string[];
      /** Handshakes in flight at most: past it the rate gives way (see open()). */
      maxInflight: number;
    }
  | { type: 'close' };

export type ConnectionsFromWorker =
  | {
      type: 'opened';
      connected: number;
      errors: Record<string, number>;
      /** Time from starting to connect to the CONNECT ack (and the subscribe ack, with a room), µs histogram. */
      hist: string;
      /** Sockets held by this worker that the server closed since the first open. */
      dropped: number;
    }
  | { type: 'closed' };

const send = (m: ConnectionsFromWorker) => process.send?.(m);
let clients: LeanClient[] = [];
let dropped = 0;
let opened = 0;

async function open(m: Extract<ConnectionsToWorker, { type: 'open' }>): Promise<void> {
  const errors: Record<string, number> = {};
  const hist = newHistogram();
  const gap = 1000 / Math.max(1, m.rate);
  const t0 = nowMs();
  let connected = 0;
  // A late timer tick releases hundreds of due connects at once; past the server's accept backlog
  // the kernel drops SYNs and the client retries after 1 s, then 3 s — connect p99 would then
  // measure SYN retransmits. Bounding the handshakes in flight turns an overload into a lower rate.
  let inflight = 0;
  const slots: (() => void)[] = [];
  const acquire = (): Promise<void> => {
    if (inflight >= m.maxInflight) return new Promise((r) => slots.push(r));
    inflight++;
    return Promise.resolve();
  };
  const release = () => {
    const next = slots.shift();
    if (next) next();
    else inflight--;
  };
  await Promise.all(
    Array.from({ length: m.count }, async (_, i) => {
      const wait = t0 + i * gap - nowMs();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await acquire();
      const began = nowMs();
      const localAddress = m.localAddresses.length ? m.localAddresses[opened++ % m.localAddresses.length] : undefined;
      try {
        const c = await LeanClient.connect({
          url: m.url,
          connectTimeoutMs: 30_000,
          ...(m.token ? { token: m.token } : {}),
          ...(localAddress ? { localAddress } : {}),
        });
        if (m.room) {
          const ack = await c.request<{ error?: { code: string } }>('subscribe', { room: m.room }, 30_000);
          if (ack?.error) {
            c.terminate();
            throw new Error(`subscribe: ${ack.error.code}`);
          }
        }
        recordUs(hist, (nowMs() - began) * 1000);
        c.onClose = () => dropped++;
        clients.push(c);
        connected++;
      } catch (err) {
        const key = err instanceof Error ? err.message.slice(0, 100) : String(err);
        errors[key] = (errors[key] ?? 0) + 1;
      } finally {
        release();
      }
    }),
  );
  send({ type: 'opened', connected, errors, hist: encodeHistogram(hist), dropped });
}

/**
 * Closes with a TCP RST. A normal close leaves the client side in TIME_WAIT for 60 s; after a few
 * runs ~30,000 of them made connect()'s ephemeral-port search spin in the kernel (the machine went
 * to ~80 % system time and every engine's connect rate halved). LeanClient keeps its socket private.
 */
function reset(c: LeanClient): void {
  const socket = (c as unknown as { ws: { _socket?: Socket } | null }).ws?._socket;
  if (socket) socket.resetAndDestroy();
  else c.terminate();
}

process.on('message', (m: ConnectionsToWorker) => {
  if (m.type === 'open') void open(m);
  else if (m.type === 'close') {
    for (const c of clients) {
      c.onClose = null;
      reset(c);
    }
    clients = [];
    dropped = 0;
    send({ type: 'closed' });
  }
});
process.on('disconnect', () => process.exit(0));
