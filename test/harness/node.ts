import { io as connect, type Socket } from 'socket.io-client';
import { TEST_SECRET } from '../../scripts/topology/tokens.js';
import { type AppParts, createApp, type FluxoNode } from '../../server/app.js';
import { DEV_JWT_SECRET } from '../../server/auth/dev-secret.js';
import { type Config, loadConfig } from '../../server/config/index.js';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/protocol.js';

export type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * Starts a real Fluxo node on a free loopback port. Env values override the test defaults
 * (embedded PGlite in memory, silent logs); `parts` replaces what the config would build (see
 * AppParts). Stop it with `node.close()`.
 */
export async function startNode(env: Record<string, string> = {}, parts: AppParts = {}): Promise<FluxoNode> {
  const config = testConfig(env);
  const node = await createApp(config, parts);
  try {
    await node.listen();
  } catch (err) {
    await node.close();
    throw err;
  }
  return node;
}

/** The configuration `startNode` uses: the test defaults, then `env`. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_SECRET,
    SHUTDOWN_GRACE_MS: '2000',
    MIGRATE_ON_START: 'true',
    ...env,
  });
}

export { DEV_JWT_SECRET };

/** A socket.io-client connected over WebSocket; rejects with the server's connect_error. */
export function client(
  url: string,
  opts: { token?: string; headers?: Record<string, string>; transports?: ('websocket' | 'polling')[] } = {},
): Promise<Client> {
  const socket: Client = connect(url, {
    transports: opts.transports ?? ['websocket'],
    reconnection: false,
    forceNew: true,
    auth: opts.token ? { token: opts.token } : {},
    extraHeaders: opts.headers ?? {},
  });
  // `hello` follows the connect packet at once: listen before connecting so it is never missed.
  hellos.set(socket, new Promise((resolve) => socket.once('hello', resolve)));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

const hellos = new WeakMap<Client, Promise<Parameters<ServerToClientEvents['hello']>[0]>>();
/** The `hello` the server sent this client. */
export function helloOf(socket: Client): Promise<Parameters<ServerToClientEvents['hello']>[0]> {
  const p = hellos.get(socket);
  if (!p) throw new Error('not a harness client');
  return p;
}

/** Clients that a test file opens and closes together in afterAll. */
export function clientPool(): { connect: (url: string, token: string) => Promise<Client>; closeAll: () => void } {
  const open: Client[] = [];
  return {
    connect: async (url, tok) => {
      const s = await client(url, { token: tok });
      open.push(s);
      return s;
    },
    closeAll: () => {
      for (const s of open.splice(0)) s.close();
    },
  };
}

/** Collects every `event` a socket receives. */
export function collect(socket: Client): { events: Parameters<ServerToClientEvents['event']>[0][] } {
  const box = { events: [] as Parameters<ServerToClientEvents['event']>[0][] };
  socket.on('event', (e) => box.events.push(e));
  return box;
}

/**
 * Retries an assertion until it passes or the time is up (cross-node and async checks). It returns
 * as soon as the check passes, so the default only sets how long a real failure takes to show: 15 s,
 * because CI runs the suite while another process loads both cores, and there a 5 s wait for a
 * cross-node presence diff once ran out (presence-bound.test.ts).
 */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 15_000, stepMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, stepMs));
    }
  }
}

/** Emits with an ack and resolves with the ack payload. */
export function request<E extends keyof ClientToServerEvents>(
  socket: Client,
  event: E,
  payload: Parameters<ClientToServerEvents[E]>[0],
): Promise<Parameters<Parameters<ClientToServerEvents[E]>[1]>[0]> {
  return new Promise((resolve) => {
    (socket.emit as (e: string, p: unknown, ack: (r: unknown) => void) => void)(event, payload, resolve as (r: unknown) => void);
  });
}
