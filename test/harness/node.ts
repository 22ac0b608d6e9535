import { io as connect, type Socket } from 'socket.io-client';
import { type AppParts, createApp, type FluxoNode } from '../../server/app.js';
import { DEV_JWT_SECRET } from '../../server/auth/dev-secret.js';
import { mintToken } from '../../server/auth/mint.js';
import { type Config, loadConfig } from '../../server/config/index.js';
import type { ClientToServerEvents, Role, ServerToClientEvents } from '../../shared/protocol.js';

export type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256!';

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

export function token(opts: { sub: string; tid: string; role?: Role; name?: string; ttlS?: number; secret?: string }): Promise<string> {
  return mintToken({
    sub: opts.sub,
    tid: opts.tid,
    role: opts.role ?? 'editor',
    ttlS: opts.ttlS ?? 3600,
    secret: opts.secret ?? TEST_SECRET,
    ...(opts.name ? { name: opts.name } : {}),
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

/** Collects every `event` a socket receives. */
export function collect(socket: Client): { events: Parameters<ServerToClientEvents['event']>[0][] } {
  const box = { events: [] as Parameters<ServerToClientEvents['event']>[0][] };
  socket.on('event', (e) => box.events.push(e));
  return box;
}

/** Retries an assertion until it passes or the time is up (cross-node and async checks). */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 5000, stepMs = 25): Promise<void> {
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

export async function api<T = unknown>(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: string } = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed as T, headers: res.headers };
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
