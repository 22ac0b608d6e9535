import type { Socket } from 'node:net';
import WebSocket from 'ws';

/**
 * A minimal Socket.IO v4 client: Engine.IO v4 over a WebSocket only, default namespace only, no
 * binary attachments, no reconnection. It exists so that a load generator can hold thousands of
 * sockets without socket.io-client's per-socket machinery (timers, emitters, managers) becoming the
 * bottleneck; `test/integration/loadtest-lean-client.test.ts` checks it against socket.io-client.
 *
 * Wire format (https://socket.io/docs/v4/socket-io-protocol/):
 * - Engine.IO packet = one digit type + payload: `0` open, `1` close, `2` ping, `3` pong, `4` message.
 * - Socket.IO packet inside a `4` message: `0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK,
 *   `4` CONNECT_ERROR, then an optional ack id, then JSON. So `40{"token":"…"}` connects with auth,
 *   `42["event",{…}]` is an event, `421["subscribe",{…}]` an event expecting ack 1, `431[{…}]` its ack.
 */
export interface LeanClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** Sent as the CONNECT auth payload `{ token }`. */
  token?: string;
  /** Source address for the TCP connection (e.g. `127.0.3.1`, to spread over nginx `ip_hash`). */
  localAddress?: string;
  /** @default '/socket.io/' */
  path?: string;
  /** Give up if the CONNECT ack has not arrived by then. @default 10000 */
  connectTimeoutMs?: number;
  headers?: Record<string, string>;
}

export type EventListener = (name: string, args: unknown[]) => void;
/** Receives the raw text of each `42` packet before it is parsed; return true to skip parsing. */
export type RawEventListener = (packet: string) => boolean;

export class ConnectError extends Error {
  constructor(
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'ConnectError';
  }
}

export class LeanClient {
  /** Socket.IO session id after connect. */
  sid = '';
  connected = false;
  onEvent: EventListener | null = null;
  onRaw: RawEventListener | null = null;
  onClose: ((reason: string) => void) | null = null;
  private ws: WebSocket | null = null;
  private nextAckId = 0;
  private readonly acks = new Map<number, (args: unknown[]) => void>();

  private constructor(private readonly opts: LeanClientOptions) {}

  /** Opens the socket and resolves once the server accepted CONNECT; rejects on connect_error. */
  static connect(opts: LeanClientOptions): Promise<LeanClient> {
    const client = new LeanClient(opts);
    return client.open().then(() => client);
  }

  private open(): Promise<void> {
    const base = new URL(this.opts.url);
    base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
    base.pathname = this.opts.path ?? '/socket.io/';
    base.search = '?EIO=4&transport=websocket';
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.ws?.terminate();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error('connect timeout')), this.opts.connectTimeoutMs ?? 10_000);
      const ws = new WebSocket(base, {
        perMessageDeflate: false,
        skipUTF8Validation: true,
        ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}),
        ...(this.opts.headers ? { headers: this.opts.headers } : {}),
      });
      this.ws = ws;
      ws.on('error', (err) => fail(err));
      ws.on('unexpected-response', (_req, res) => fail(new Error(`HTTP ${res.statusCode} on upgrade`)));
      ws.on('close', (code) => {
        const was = this.connected;
        this.connected = false;
        fail(new Error(`closed before connect (${code})`));
        for (const cb of this.acks.values()) cb([{ error: { code: 'disconnected', message: 'socket closed' } }]);
        this.acks.clear();
        if (was) this.onClose?.(`close ${code}`);
      });
      ws.on('message', (raw: Buffer) => {
        const text = raw.toString();
        const type = text.charCodeAt(0);
        if (type === 0x34 /* 4 message */) {
          this.onPacket(text, (err) => (err ? fail(err) : done()));
        } else if (type === 0x32 /* 2 ping */) {
          ws.send('3');
        } else if (type === 0x30 /* 0 open */) {
          ws.send(this.opts.token ? `40${JSON.stringify({ token: this.opts.token })}` : '40');
        } else if (type === 0x31 /* 1 close */) {
          ws.close();
        }
      });
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private onPacket(text: string, onConnect: (err?: Error) => void): void {
    const kind = text.charCodeAt(1);
    if (kind === 0x32 /* 2 EVENT */) {
      if (this.onRaw?.(text)) return;
      const args = parsePayload(text, 2);
      if (!args || typeof args.body[0] !== 'string') return;
      this.onEvent?.(args.body[0], args.body.slice(1));
    } else if (kind === 0x33 /* 3 ACK */) {
      const args = parsePayload(text, 2);
      if (!args || args.id === null) return;
      const cb = this.acks.get(args.id);
      this.acks.delete(args.id);
      cb?.(args.body);
    } else if (kind === 0x30 /* 0 CONNECT */) {
      const body = text.length > 2 ? (JSON.parse(text.slice(2)) as { sid?: string }) : {};
      this.sid = body.sid ?? '';
      this.connected = true;
      onConnect();
    } else if (kind === 0x34 /* 4 CONNECT_ERROR */) {
      const body = JSON.parse(text.slice(2) || '{}') as { message?: string; data?: unknown };
      onConnect(new ConnectError(body.message ?? 'connect_error', body.data));
    } else if (kind === 0x31 /* 1 DISCONNECT */) {
      this.ws?.close();
    }
  }

  /** Sends an event without an ack. */
  emit(name: string, ...args: unknown[]): void {
    this.ws?.send(`42${JSON.stringify([name, ...args])}`);
  }

  /** Sends an event and resolves with the first argument of the server's ack. */
  request<T = unknown>(name: string, payload: unknown, timeoutMs = 10_000): Promise<T> {
    const id = this.nextAckId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error(`ack timeout for ${name}`));
      }, timeoutMs);
      this.acks.set(id, (args) => {
        clearTimeout(timer);
        resolve(args[0] as T);
      });
      this.ws?.send(`42${id}${JSON.stringify([name, payload])}`);
    });
  }

  close(): void {
    if (!this.ws) return;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send('41');
    this.ws.close();
  }

  /** Drops the TCP connection without a close handshake (fast teardown of many sockets). */
  terminate(): void {
    this.ws?.terminate();
  }

  /** Drops the connection with a TCP RST: see resetWebSocket(). */
  reset(): void {
    if (this.ws) resetWebSocket(this.ws);
  }
}

/**
 * Closes with a TCP RST. A normal close leaves the client side in TIME_WAIT for 60 s; after a few
 * runs ~30,000 of them made connect()'s ephemeral-port search spin in the kernel (the machine went
 * to ~80 % system time and every engine's connect rate halved). `ws` keeps its socket private.
 */
export function resetWebSocket(ws: WebSocket): void {
  const socket = (ws as unknown as { _socket?: Socket })._socket;
  if (socket) socket.resetAndDestroy();
  else ws.terminate();
}

/** Parses `<digits>?<json array>` starting at `from`: the ack id (or null) and the array. */
function parsePayload(text: string, from: number): { id: number | null; body: unknown[] } | null {
  let i = from;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    i++;
  }
  const id = i > from ? Number(text.slice(from, i)) : null;
  // A namespace other than `/` would appear as `/ns,`; this client only speaks the default one.
  if (text.charCodeAt(i) !== 0x5b /* [ */) return null;
  const body = JSON.parse(text.slice(i)) as unknown;
  return Array.isArray(body) ? { id, body } : null;
}
