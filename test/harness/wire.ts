/**
 * Clients that speak HTTP/1.1, Engine.IO and Socket.IO by hand, byte for byte, so that the fuzzer
 * and the attack suite can send what no library would (bad methods, raw bytes in paths, frames of
 * any type, attachments that do not add up) and see exactly what comes back: a response, an ack,
 * a close. Every wait has a deadline; nothing here sleeps.
 */
import { connect as netConnect, type Socket } from 'node:net';
import WebSocket from 'ws';

/** Engine.IO's record separator between the packets of one long-polling payload. */
export const RS = '\x1e';

// ─── HTTP/1.1 ───────────────────────────────────────────────────────────────────────────────────

export interface RawRequest {
  method: string;
  /** Request target exactly as written on the request line (path and query, not encoded here). */
  target: string;
  /** Written as given, in order; `Host` is added when absent. `Content-Length` is added for a body unless given. */
  headers?: [string, string][];
  body?: Buffer | string;
  /** Bind the client side to this loopback address (127.0.0.0/8 is all local on Linux). */
  localAddress?: string;
  /** @default 10_000 */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Replace the whole request with these bytes (request line, headers, body): nothing is added. */
  raw?: Buffer;
}

export interface RawResponse {
  kind: 'response';
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  rawHeaders: [string, string][];
  body: Buffer;
  /** The server closed the connection right after this response (without waiting for us). */
  closedByServer: boolean;
  ms: number;
}

export type RawResult =
  | RawResponse
  /** The connection ended (FIN or RST) before a whole response arrived. */
  | { kind: 'closed'; received: Buffer; error?: string; ms: number }
  | { kind: 'timeout'; received: Buffer; ms: number }
  | { kind: 'aborted'; received: Buffer; ms: number };

interface ParsedHead {
  status: number;
  headers: Record<string, string>;
  rawHeaders: [string, string][];
  bodyStart: number;
}

function parseHead(buf: Buffer): ParsedHead | null | 'bad' {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) return 'bad';
  const headers: Record<string, string> = {};
  const rawHeaders: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    rawHeaders.push([name, value]);
    const k = name.toLowerCase();
    headers[k] = headers[k] === undefined ? value : `${headers[k]}, ${value}`;
  }
  return { status: Number(m[1]), headers, rawHeaders, bodyStart: end + 4 };
}

/** The body of a response whose head is `head`, or null while incomplete. */
function bodyOf(buf: Buffer, head: ParsedHead, method: string, ended: boolean): Buffer | null {
  const rest = buf.subarray(head.bodyStart);
  if (method === 'HEAD' || head.status === 204 || head.status === 304 || (head.status >= 100 && head.status < 200)) return Buffer.alloc(0);
  const te = head.headers['transfer-encoding'];
  if (te && /chunked/i.test(te)) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const nl = rest.indexOf('\r\n', at);
      if (nl < 0) return null;
      const size = Number.parseInt(rest.subarray(at, nl).toString('latin1'), 16);
      if (!Number.isFinite(size)) return ended ? rest : null;
      if (size === 0) return Buffer.concat(parts);
      if (rest.length < nl + 2 + size + 2) return null;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      at = nl + 2 + size + 2;
    }
  }
  const cl = head.headers['content-length'];
  if (cl !== undefined) {
    const n = Number(cl);
    return rest.length >= n ? rest.subarray(0, n) : null;
  }
  return ended ? rest : null;
}

/** The bytes of a request as `rawHttp` would send them. */
export function encodeRequest(url: string, req: RawRequest): Buffer {
  if (req.raw) return req.raw;
  const u = new URL(url);
  const headers = [...(req.headers ?? [])];
  const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
  if (!has('host')) headers.unshift(['Host', u.host]);
  const body = req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body, 'utf8');
  if (body && !has('content-length') && !has('transfer-encoding')) headers.push(['Content-Length', String(body.length)]);
  const head = `${req.method} ${req.target} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  // latin1: a header value or target with code points ≥ 0x100 is cut to a byte, as a careless client would.
  return body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1');
}

/**
 * One request on its own TCP connection; resolves with the response, or with how the connection
 * ended without one. Never rejects.
 */
export function rawHttp(url: string, req: RawRequest): Promise<RawResult> {
  const u = new URL(url);
  const started = Date.now();
  const timeoutMs = req.timeoutMs ?? 10_000;
  const method = req.raw ? (req.raw.toString('latin1').split(' ', 1)[0] ?? '') : req.method;
  return new Promise<RawResult>((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    let head: ParsedHead | null = null;
    const sock: Socket = netConnect({
      host: u.hostname,
      port: Number(u.port),
      ...(req.localAddress ? { localAddress: req.localAddress } : {}),
    });
    const received = () => Buffer.concat(chunks);
    const finish = (r: RawResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      resolve(r);
    };
    const onAbort = () => finish({ kind: 'aborted', received: received(), ms: Date.now() - started });
    req.signal?.addEventListener('abort', onAbort);
    if (req.signal?.aborted) return onAbort();
    const timer = setTimeout(() => finish({ kind: 'timeout', received: received(), ms: Date.now() - started }), timeoutMs);
    const tryComplete = (ended: boolean) => {
      const buf = received();
      if (!head) {
        const h = parseHead(buf);
        if (h === 'bad') return finish({ kind: 'closed', received: buf, error: 'not an HTTP response', ms: Date.now() - started });
        if (!h) {
          if (ended) finish({ kind: 'closed', received: buf, ms: Date.now() - started });
          return;
        }
        head = h;
      }
      // 100 Continue: skip it and read the real response.
      if (head.status === 100) {
        const rest = buf.subarray(head.bodyStart);
        chunks.length = 0;
        chunks.push(rest);
        head = null;
        return tryComplete(ended);
      }
      const body = bodyOf(buf, head, method.toUpperCase(), ended);
      if (body === null) {
        if (ended) finish({ kind: 'closed', received: buf, error: 'response cut short', ms: Date.now() - started });
        return;
      }
      const r: RawResponse = {
        kind: 'response',
        status: head.status,
        headers: head.headers,
        rawHeaders: head.rawHeaders,
        body,
        closedByServer: ended,
        ms: Date.now() - started,
      };
      if (ended) return finish(r);
      // Give a close that is already on its way one turn to arrive, so `closedByServer` can be told.
      setImmediate(() => finish(r));
    };
    let ended = false;
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      tryComplete(false);
    });
    sock.on('end', () => {
      ended = true;
      tryComplete(true);
    });
    sock.on('close', () => {
      if (!ended) tryComplete(true);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      // EPIPE/ECONNRESET while we were still writing: the server may have answered first.
      const buf = received();
      const h = head ?? parseHead(buf);
      if (h && h !== 'bad') {
        head = h;
        tryComplete(true);
      }
      finish({ kind: 'closed', received: buf, error: err.code ?? err.message, ms: Date.now() - started });
    });
    sock.once('connect', () => {
      sock.write(encodeRequest(url, req));
    });
  });
}

/** JSON of a response body, or undefined. */
export function jsonOf(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

// ─── Engine.IO / Socket.IO frames ───────────────────────────────────────────────────────────────

export interface SioEvent {
  /** Socket.IO packet type: 2 EVENT, 5 BINARY_EVENT (then `attachments` binary frames follow). */
  type?: 2 | 5;
  /** Namespace, e.g. `/` (omitted from the frame) or `/admin`. */
  nsp?: string;
  /** Ack id, written as given (digits for a well-formed one). */
  ackId?: string | number;
  /** JSON text of the data array (after the id). */
  data: string;
  /** For type 5: the number written in the header (need not match what is sent). */
  attachments?: number;
}

/** The Socket.IO packet text (no Engine.IO `4` prefix). */
export function sioText(p: SioEvent): string {
  const type = p.type ?? 2;
  const att = type === 5 ? `${p.attachments ?? 1}-` : '';
  const nsp = p.nsp && p.nsp !== '/' ? `${p.nsp},` : '';
  return `${type}${att}${nsp}${p.ackId ?? ''}${p.data}`;
}

/** What one side of a raw Engine.IO session saw. */
export interface Received {
  /** Engine.IO packets in arrival order: text as sent (type char first), binary as Buffer. */
  packets: (string | Buffer)[];
  /** Set once the session is over from the server's side, with how. */
  closed: string | null;
}

/** Common face of the two raw transports. */
export interface RawSession extends Received {
  transport: 'websocket' | 'polling';
  /** Engine.IO open packet (`0{…}`) as received, or null if none came. */
  open: { sid: string; pingInterval: number; pingTimeout: number; maxPayload: number } | null;
  /** Sends Engine.IO packets: strings as given (type char first), Buffers as binary. Polling sends them in one POST. */
  send(packets: (string | Buffer)[]): Promise<void>;
  /** Resolves when `pred` holds over what was received or the session closed; false at the deadline. */
  until(pred: (r: Received) => boolean, deadline: number): Promise<boolean>;
  /** Ends the session from our side (Engine.IO close packet, then the socket). */
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Query string after `?` (default: `EIO=4&transport=<transport>`). */
  query?: string;
  /** Path (default `/socket.io/`). */
  path?: string;
  headers?: [string, string][];
  localAddress?: string;
  /** Answer the server's pings (default true). */
  pong?: boolean;
  /** Long-polling: sends the next poll only while this holds (checked as each poll returns); default always. */
  pollWhile?: () => boolean;
  /** Deadline for the handshake (ms since epoch); default 10 s from now. */
  deadline?: number;
}

type Waiter = () => void;

abstract class SessionBase implements RawSession {
  abstract transport: 'websocket' | 'polling';
  packets: (string | Buffer)[] = [];
  closed: string | null = null;
  open: RawSession['open'] = null;
  protected waiters = new Set<Waiter>();

  protected notify(): void {
    for (const w of [...this.waiters]) w();
  }

  protected push(p: string | Buffer): void {
    if (typeof p === 'string' && p.startsWith('0{') && !this.open) {
      try {
        this.open = JSON.parse(p.slice(1));
      } catch {}
    }
    this.packets.push(p);
    this.notify();
  }

  /** Marks the session over (from the server's side, or refused). */
  end(how: string): void {
    if (this.closed === null) this.closed = how;
    this.notify();
  }

  until(pred: (r: Received) => boolean, deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (pred(this) || this.closed !== null) {
          cleanup();
          resolve(pred(this));
        }
      };
      const timer = setTimeout(
        () => {
          cleanup();
          resolve(pred(this));
        },
        Math.max(0, deadline - Date.now()),
      );
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  abstract send(packets: (string | Buffer)[]): Promise<void>;
  abstract close(): Promise<void>;
}

class DeadSession extends SessionBase {
  constructor(readonly transport: 'websocket' | 'polling') {
    super();
  }
  async send(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A session that never opened. */
function deadSession(transport: 'websocket' | 'polling', how: string): RawSession {
  const s = new DeadSession(transport);
  s.end(how);
  return s;
}

class WsSession extends SessionBase {
  transport = 'websocket' as const;
  constructor(
    private readonly ws: WebSocket,
    pong: boolean,
  ) {
    super();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const text = data.toString('utf8');
        if (text === '2' && pong && ws.readyState === WebSocket.OPEN) ws.send('3');
        this.push(text);
      } else this.push(Buffer.from(data));
    });
    ws.on('close', (code, reason) => this.end(`ws close ${code}${reason.length ? ` ${reason.toString()}` : ''}`));
    ws.on('error', (err) => this.end(`ws error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
  }

  async send(packets: (string | Buffer)[]): Promise<void> {
    for (const p of packets) {
      if (this.ws.readyState !== WebSocket.OPEN) return;
      await new Promise<void>((resolve) => this.ws.send(p, { binary: Buffer.isBuffer(p) }, () => resolve()));
    }
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const gone = new Promise<void>((r) => this.ws.once('close', () => r()));
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    const timer = setTimeout(() => this.ws.terminate(), 2000);
    await gone;
    clearTimeout(timer);
  }
}

/** Opens an Engine.IO session over WebSocket (no polling first). Never rejects: a refusal is `closed`. */
export async function openWebSocket(url: string, opts: OpenOptions = {}): Promise<RawSession> {
  const base = url.replace(/^http/, 'ws');
  const target = `${base}${opts.path ?? '/socket.io/'}?${opts.query ?? 'EIO=4&transport=websocket'}`;
  const headers: Record<string, string> = {};
  for (const [k, v] of opts.headers ?? []) headers[k] = v;
  const deadline = opts.deadline ?? Date.now() + 10_000;
  let ws: WebSocket;
  try {
    ws = new WebSocket(target, {
      headers,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      handshakeTimeout: Math.max(1, deadline - Date.now()),
      // The server may send large frames back; do not let the client be the one to refuse.
      maxPayload: 64 * 1024 * 1024,
    });
  } catch (err) {
    return deadSession('websocket', `refused by the client library: ${(err as Error).message}`);
  }
  const session = new WsSession(ws, opts.pong ?? true);
  let upgradeRefused: string | null = null;
  ws.on('unexpected-response', (_req, res) => {
    upgradeRefused = `http ${res.statusCode}`;
    let body = '';
    res.on('data', (c: Buffer) => {
      body += c.toString();
    });
    res.on('end', () => {
      session.end(`${upgradeRefused} ${body.slice(0, 300)}`);
      ws.terminate();
    });
  });
  await new Promise<void>((resolve) => {
    ws.once('open', () => resolve());
    ws.once('close', () => resolve());
    ws.once('error', () => resolve());
    if (upgradeRefused) resolve();
    ws.once('unexpected-response', () => resolve());
  });
  if (session.closed === null && ws.readyState === WebSocket.OPEN) await session.until((r) => r.packets.length > 0, deadline);
  return session;
}

class PollingSession extends SessionBase {
  transport = 'polling' as const;
  private readonly abort = new AbortController();
  private polling: Promise<void> | null = null;
  constructor(
    private readonly base: string,
    private readonly sidUrl: string,
    private readonly opts: OpenOptions,
  ) {
    super();
  }

  /** Splits a polling payload into packets (binary ones come as `b<base64>`). */
  ingest(payload: string): void {
    for (const p of payload.split(RS)) {
      if (p === '') continue;
      if (p.startsWith('b')) this.push(Buffer.from(p.slice(1), 'base64'));
      else {
        if (p === '2' && (this.opts.pong ?? true)) void this.send(['3']);
        this.push(p);
        if (p === '1') this.end('engine close packet');
      }
    }
  }

  startPolling(): void {
    this.polling ??= (async () => {
      while (this.closed === null && !this.abort.signal.aborted && (this.opts.pollWhile?.() ?? true)) {
        const r = await rawHttp(this.base, {
          method: 'GET',
          target: this.sidUrl,
          headers: this.opts.headers ?? [],
          ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}),
          signal: this.abort.signal,
          // A poll is held for up to pingInterval (25 s) when there is nothing to send.
          timeoutMs: 60_000,
        });
        if (r.kind === 'aborted') return;
        if (r.kind !== 'response') {
          this.end(`poll ${r.kind}${'error' in r && r.error ? ` ${r.error}` : ''}`);
          return;
        }
        if (r.status !== 200) {
          this.end(`poll http ${r.status} ${r.body.toString().slice(0, 200)}`);
          return;
        }
        this.ingest(r.body.toString('utf8'));
      }
    })();
  }

  async send(packets: (string | Buffer)[]): Promise<void> {
    if (this.closed !== null || packets.length === 0) return;
    const body = packets.map((p) => (Buffer.isBuffer(p) ? `b${p.toString('base64')}` : p)).join(RS);
    const r = await rawHttp(this.base, {
      method: 'POST',
      target: this.sidUrl,
      headers: [...(this.opts.headers ?? []), ['Content-Type', 'text/plain;charset=UTF-8']],
      body,
      ...(this.opts.localAddress ? { localAddress: this.opts.localAddress } : {}),
    });
    if (r.kind !== 'response') this.end(`post ${r.kind}`);
    else if (r.status !== 200) this.end(`post http ${r.status} ${r.body.toString().slice(0, 200)}`);
  }

  async close(): Promise<void> {
    if (this.closed === null) {
      await this.send(['1']);
      this.end('closed by us');
    }
    this.abort.abort();
    await this.polling;
  }
}

/** Opens an Engine.IO long-polling session and starts polling. Never rejects: a refusal is `closed`. */
export async function openPolling(url: string, opts: OpenOptions = {}): Promise<RawSession> {
  const path = opts.path ?? '/socket.io/';
  const query = opts.query ?? 'EIO=4&transport=polling';
  const r = await rawHttp(url, {
    method: 'GET',
    target: `${path}?${query}`,
    headers: opts.headers ?? [],
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    timeoutMs: Math.max(1, (opts.deadline ?? Date.now() + 10_000) - Date.now()),
  });
  const fail = (how: string) => deadSession('polling', how);
  if (r.kind !== 'response') return fail(`handshake ${r.kind}`);
  if (r.status !== 200) return fail(`handshake http ${r.status} ${r.body.toString().slice(0, 300)}`);
  const text = r.body.toString('utf8');
  let sid: string;
  try {
    sid = (JSON.parse(text.split(RS)[0]!.slice(1)) as { sid: string }).sid;
  } catch {
    return fail(`handshake not an open packet: ${text.slice(0, 200)}`);
  }
  const s = new PollingSession(url, `${path}?${query}&sid=${encodeURIComponent(sid)}`, opts);
  s.ingest(text);
  s.startPolling();
  return s;
}

export function openSession(transport: 'websocket' | 'polling', url: string, opts: OpenOptions = {}): Promise<RawSession> {
  return transport === 'websocket' ? openWebSocket(url, opts) : openPolling(url, opts);
}

// ─── Socket.IO on top of a raw session ──────────────────────────────────────────────────────────

/** The Socket.IO packets (text, without the Engine.IO `4`) a session received. */
export function sioPackets(r: Received): string[] {
  return r.packets.filter((p): p is string => typeof p === 'string' && p.startsWith('4')).map((p) => p.slice(1));
}

/** The ack packet for `ackId` (namespace `/`), or undefined: `3<id>[…]`. */
export function ackFor(r: Received, ackId: string): string | undefined {
  return sioPackets(r).find((p) => p.startsWith(`3${ackId}[`));
}

/** Parsed first argument of an ack packet text (`3<id>[x]` → x). */
export function ackPayload(packet: string): unknown {
  const i = packet.indexOf('[');
  try {
    return (JSON.parse(packet.slice(i)) as unknown[])[0];
  } catch {
    return undefined;
  }
}

/**
 * Opens a session and connects the `/` namespace with `auth`; resolves once the CONNECT (or
 * CONNECT_ERROR) answer came, or at the deadline.
 */
export async function connectSio(
  transport: 'websocket' | 'polling',
  url: string,
  auth: unknown,
  opts: OpenOptions = {},
): Promise<{ session: RawSession; connected: boolean; connectError: unknown }> {
  const deadline = opts.deadline ?? Date.now() + 10_000;
  const session = await openSession(transport, url, { ...opts, deadline });
  if (session.closed !== null || !session.open) return { session, connected: false, connectError: session.closed };
  await session.send([`40${auth === undefined ? '' : JSON.stringify(auth)}`]);
  await session.until((r) => sioPackets(r).some((p) => p.startsWith('0') || p.startsWith('4')), deadline);
  const answer = sioPackets(session).find((p) => p.startsWith('0') || p.startsWith('4'));
  if (answer?.startsWith('0')) return { session, connected: true, connectError: null };
  let connectError: unknown = answer ?? session.closed ?? 'no answer';
  if (answer) {
    try {
      connectError = JSON.parse(answer.slice(1));
    } catch {}
  }
  return { session, connected: false, connectError };
}

/** Sends one event with an ack id on a connected session and waits for its ack (or the close). */
export async function emitWithAck(session: RawSession, ackId: number, data: string, deadlineMs = 10_000): Promise<unknown> {
  const id = String(ackId);
  await session.send([`4${sioText({ ackId: id, data })}`]);
  await session.until((r) => ackFor(r, id) !== undefined, Date.now() + deadlineMs);
  const ack = ackFor(session, id);
  if (ack === undefined) throw new Error(`no ack ${id} (session ${session.closed ?? 'still open'})`);
  return ackPayload(ack);
}

/** Server events (`2[name, …args]` on namespace `/`) a session received, parsed. */
export function serverEvents(r: Received): { event: string; args: unknown[] }[] {
  const out: { event: string; args: unknown[] }[] = [];
  for (const p of sioPackets(r)) {
    if (!p.startsWith('2[')) continue;
    try {
      const [event, ...args] = JSON.parse(p.slice(1)) as [string, ...unknown[]];
      out.push({ event, args });
    } catch {}
  }
  return out;
}

export interface SioClient {
  session: RawSession;
  connected: boolean;
  /** The CONNECT_ERROR body (`{message, data:{code,…}}`) or how the session ended, when not connected. */
  connectError: unknown;
  /** Emits `event` with `payload` (and `extra` arguments) asking for an ack; resolves with the ack's first argument. Rejects if the session closes first. */
  ask(event: string, payload: unknown, extra?: unknown[], timeoutMs?: number): Promise<unknown>;
  /** Server events received so far. */
  events(): { event: string; args: unknown[] }[];
  close(): Promise<void>;
}

/** A Socket.IO client written by hand on a raw session: connects `/` with `auth`, then asks with acks. */
export async function sioClient(
  url: string,
  auth: unknown,
  opts: OpenOptions & { transport?: 'websocket' | 'polling' } = {},
): Promise<SioClient> {
  const { session, connected, connectError } = await connectSio(opts.transport ?? 'websocket', url, auth, opts);
  let next = 0;
  return {
    session,
    connected,
    connectError,
    ask: async (event, payload, extra = [], timeoutMs = 10_000) => {
      const id = String(++next);
      await session.send([`4${sioText({ ackId: id, data: JSON.stringify([event, payload, ...extra]) })}`]);
      await session.until((r) => ackFor(r, id) !== undefined, Date.now() + timeoutMs);
      const ack = ackFor(session, id);
      if (ack === undefined) throw new Error(`no ack to ${event} (session ${session.closed ?? 'still open'})`);
      return ackPayload(ack);
    },
    events: () => serverEvents(session),
    close: () => session.close(),
  };
}
