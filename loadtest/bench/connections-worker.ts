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
  await Promise.all(
    Array.from({ length: m.count }, async (_, i) => {
      const wait = t0 + i * gap - nowMs();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
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
      }
    }),
  );
  send({ type: 'opened', connected, errors, hist: encodeHistogram(hist), dropped });
}

process.on('message', (m: ConnectionsToWorker) => {
  if (m.type === 'open') void open(m);
  else if (m.type === 'close') {
    for (const c of clients) {
      c.onClose = null;
      c.terminate();
    }
    clients = [];
    dropped = 0;
    send({ type: 'closed' });
  }
});
process.on('disconnect', () => process.exit(0));
