import { io, type Socket } from 'socket.io-client';
import type {
  Ack,
  ClientToServerEvents,
  FluxoEvent,
  PresenceDiff,
  PresenceMember,
  PresenceState,
  Role,
  RoomPosition,
  ServerToClientEvents,
  SubscribeResult,
  TransitionResult,
} from '../protocol.js';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { Emitter } from './emitter.js';
import { FluxoError } from './errors.js';
import { type RoomGap, RoomStream } from './room-stream.js';

export type FluxoSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface ConnectOptions {
  /** Base URL of Fluxo (or of the load balancer), e.g. `http://localhost:8080`. In a page served by Fluxo: `location.origin`. */
  url: string;
  /** A JWT. Without it (and without getToken) the session cookie is used: browsers only. */
  token?: string;
  /**
   * Returns a fresh token. Called when the server warns that the token expires (`auth:expiring`,
   * a minute ahead) and when a reconnect is refused with `token_expired`.
   */
  getToken?: () => Promise<string>;
  /** Reconnect delays. */
  backoff?: BackoffOptions;
  /** Failed reconnects after which the state reads `offline` (retries go on). @default 3 */
  offlineAfterAttempts?: number;
  /** How long a request waits for its ack, in ms. @default 10000 */
  ackTimeoutMs?: number;
  /**
   * How long an event that arrived ahead of its room's order waits for the ones before it (they
   * may be on their way through another node) before the room is fetched from the log. @default 500
   */
  gapWaitMs?: number;
  /** @default ['websocket', 'polling'] (WebSocket first, long-polling when it cannot be opened) */
  transports?: ('websocket' | 'polling')[];
  /** Socket.IO path. @default '/socket.io/' */
  path?: string;
  /** Extra handshake headers (Node only; browsers ignore them on WebSocket). */
  headers?: Record<string, string>;
}

export interface Session {
  nodeId: string;
  userId: string;
  tenant: string;
  role: Role;
  /** Token expiry, seconds since epoch. */
  exp: number;
}

export type ConnectionStatus =
  | { state: 'connecting' }
  | ({ state: 'connected' } & Session)
  | { state: 'reconnecting'; attempt: number; delayMs: number }
  | { state: 'offline'; reason: string; error?: FluxoError; retrying: boolean };

export type ConnectionState = ConnectionStatus['state'];

export interface PresenceChange {
  room: string;
  members: PresenceMember[];
  diff: PresenceDiff | null;
}

export type ClientEvents = {
  /** The connection state changed. */
  state: (status: ConnectionStatus) => void;
  /** Presence of a subscribed room changed (diff is null for a fresh snapshot). */
  presence: (change: PresenceChange) => void;
  /**
   * A failure no request was waiting for: a subscription refused, a resubscribe still failing
   * after three tries (it goes on retrying), a token refresh failed.
   */
  error: (error: FluxoError) => void;
  /**
   * Events of a subscribed room that cannot be delivered because the log no longer has them
   * (retention) or is another log (epoch). Reload the room's state from the HTTP API; delivery
   * goes on after the gap.
   */
  gap: (gap: RoomGap) => void;
  /** The token was refreshed. */
  token: (info: { exp: number }) => void;
  /**
   * The server is disconnecting this client and said why (`server:disconnect`): `token_revoked`
   * (then offline for good), `token_expired` (a fresh token through getToken, then back),
   * `not_ready` (the node drains: back through the load balancer), `rate_limited` (back after
   * `retryAfterMs`).
   */
  disconnect: (reason: FluxoError) => void;
};

export type EventHandler = (event: FluxoEvent) => void;

/** Stops the subscription; `ready` settles with the first subscribe ack. */
export type Unsubscribe = (() => Promise<void>) & { ready: Promise<SubscribeResult> };

export interface TransitionOptions {
  /** Refuse (409 version_conflict) unless the process is at this version. */
  expectedVersion?: number;
  /** Idempotency key; generated when absent, and reused when the request is retried after a disconnect. */
  requestId?: string;
  data?: Record<string, unknown>;
}

interface Room {
  stream: RoomStream;
  handlers: Set<EventHandler>;
  members: Map<string, PresenceMember>;
  /** Re-applied after every reconnect: presence lives with the connection. */
  presenceState: PresenceState | null;
  ready: { resolve: (r: SubscribeResult) => void; reject: (e: FluxoError) => void } | null;
  /** Settles with the first subscribe ack; shared by every handler of the room. */
  firstAck: Promise<SubscribeResult>;
  /** A (re)subscribe is in flight; another was asked for meanwhile (`rejoin`): run it after. */
  joining: boolean;
  rejoin: boolean;
}

/**
 * Auth failures that another attempt with the same credentials cannot fix. Not `auth_unavailable`
 * (the identity provider's keys could not be fetched) nor `store_unavailable`: those are retried
 * with back-off like an unreachable server.
 */
const FATAL = new Set(['unauthorized', 'token_invalid', 'token_revoked', 'forbidden', 'origin_not_allowed']);

/**
 * A Fluxo connection that survives reconnects: it resubscribes every room from its last event id,
 * so handlers see each event once and in id order, and it keeps presence and the token fresh.
 * @example
 * const client = connect({ url: 'http://localhost:8080', token });
 * client.on('state', (s) => console.log(s.state));
 * const stop = client.subscribe('workflow:wf1', (event) => render(event));
 * await client.transition('p1', 'doing', { expectedVersion: 1 });
 */
export class FluxoClient extends Emitter<ClientEvents> {
  /** The underlying Socket.IO socket (tests use it to cut the transport). */
  readonly socket: FluxoSocket;
  private readonly opts: ConnectOptions;
  private token: string | undefined;
  private readonly rooms = new Map<string, Room>();
  private current: ConnectionStatus = { state: 'connecting' };
  private sessionInfo: Session | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private expired = false;
  /** What the server's `server:disconnect` said, until the disconnect it announced. */
  private told: FluxoError | null = null;
  private refreshing: Promise<void> | null = null;

  constructor(opts: ConnectOptions) {
    super();
    this.opts = opts;
    this.token = opts.token;
    this.socket = io(opts.url, {
      autoConnect: false,
      // Reconnection is ours: it must refresh tokens and resubscribe, and Socket.IO does not retry middleware refusals.
      reconnection: false,
      forceNew: true,
      transports: opts.transports ?? ['websocket', 'polling'],
      tryAllTransports: true,
      withCredentials: true,
      path: opts.path ?? '/socket.io/',
      extraHeaders: opts.headers ?? {},
      // A function, so every reconnect sends the latest token.
      auth: (cb) => cb(this.token ? { token: this.token } : {}),
    });
    this.wire();
    this.setStatus({ state: 'connecting' });
    this.socket.connect();
  }

  /** The latest connection status. */
  get status(): ConnectionStatus {
    return this.current;
  }

  /** Who and where, from the server's `hello`; null before the first connect. */
  get session(): Session | null {
    return this.sessionInfo;
  }

  /**
   * Delivers the events of `room` to `handler`, each exactly once and in the room's order, across
   * reconnects, node deaths and outages (see "Room streams" in shared/protocol.ts).
   * Without options the room starts at its head when the first subscribe is answered.
   * @param opts.position resume from a position saved earlier with `position(room)` (checks the epoch)
   * @param opts.after replay stored events of the room after this event id first
   */
  subscribe(room: string, handler: EventHandler, opts: { after?: number; position?: RoomPosition } = {}): Unsubscribe {
    let entry = this.rooms.get(room);
    if (!entry) {
      const created: Room = {
        stream: new RoomStream(
          room,
          {
            deliver: (e) => this.dispatch(created, e),
            fetch: () => void this.join(room, created),
            lost: (gap) => this.emit('gap', gap),
          },
          opts,
          this.opts.gapWaitMs,
        ),
        handlers: new Set(),
        members: new Map(),
        presenceState: null,
        ready: null,
        firstAck: Promise.resolve(null as never),
        joining: false,
        rejoin: false,
      };
      created.firstAck = new Promise<SubscribeResult>((resolve, reject) => {
        created.ready = { resolve, reject };
      });
      created.firstAck.catch(() => {}); // also reported through 'error'; callers may ignore `ready`
      entry = created;
      this.rooms.set(room, created);
      if (this.current.state === 'connected') void this.join(room, created);
    }
    const ready = entry.firstAck;
    entry.handlers.add(handler);
    const target = entry;
    const unsubscribe = async () => {
      target.handlers.delete(handler);
      if (target.handlers.size > 0 || this.rooms.get(room) !== target) return;
      this.rooms.delete(room);
      target.stream.close();
      if (this.current.state === 'connected') await this.request('unsubscribe', { room }).catch(() => {});
    };
    return Object.assign(unsubscribe, { ready });
  }

  /** Where a subscribed room's stream stands (null before its first ack): save it to resume later. */
  position(room: string): RoomPosition | null {
    return this.rooms.get(room)?.stream.position ?? null;
  }

  /** Who is in a subscribed room now. */
  presence(room: string): PresenceMember[] {
    return [...(this.rooms.get(room)?.members.values() ?? [])];
  }

  /** Sets this connection's presence state in a subscribed room; kept and re-sent after reconnects. */
  async setPresence(room: string, state: PresenceState): Promise<void> {
    const entry = this.rooms.get(room);
    if (!entry) throw new FluxoError('invalid_room', 'Subscribe to the room first.');
    entry.presenceState = state;
    await this.request('presence:update', { room, state });
  }

  /**
   * Moves a process to stage `to`. Resolves with the new process and its event; rejects with a
   * FluxoError (`version_conflict` with `body.current`, `invalid_transition`, `rate_limited`, …).
   * A request cut by a disconnect is retried once connected again, with the same requestId, so it
   * is applied at most once; one answered `request_in_progress` (the first try is still being
   * written) is asked again after a back-off, and gets the stored result.
   */
  async transition(processId: string, to: string, opts: TransitionOptions = {}): Promise<TransitionResult> {
    const req = {
      processId,
      to,
      requestId: opts.requestId ?? randomId(),
      ...(opts.expectedVersion !== undefined ? { expectedVersion: opts.expectedVersion } : {}),
      ...(opts.data ? { data: opts.data } : {}),
    };
    for (let tries = 0; ; tries++) {
      try {
        return await this.request('process:transition', req);
      } catch (err) {
        const lost = err instanceof FluxoError && (err.code === 'timeout' || err.code === 'disconnected');
        const busy = err instanceof FluxoError && err.code === 'request_in_progress';
        if ((!lost && !busy) || tries >= 2 || this.closed) throw err;
        if (busy) await new Promise((r) => setTimeout(r, backoffDelay(tries, this.opts.backoff)));
        else await this.whenConnected();
      }
    }
  }

  /** Disconnects for good; the state becomes `offline`. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    for (const entry of this.rooms.values()) entry.stream.close();
    this.socket.disconnect();
    this.setStatus({ state: 'offline', reason: 'closed', retrying: false });
  }

  /** Resolves when connected (at once if already). */
  whenConnected(): Promise<void> {
    if (this.current.state === 'connected') return Promise.resolve();
    if (this.closed) return Promise.reject(new FluxoError('closed', 'The client is closed.'));
    return new Promise((resolve, reject) => {
      const off = this.on('state', (s) => {
        if (s.state === 'connected') {
          off();
          resolve();
        } else if (s.state === 'offline' && !s.retrying) {
          off();
          reject(s.error ?? new FluxoError('closed', 'The client is offline.'));
        }
      });
    });
  }

  private wire(): void {
    const s = this.socket;
    s.on('hello', (info) => {
      this.attempt = 0;
      this.expired = false;
      this.sessionInfo = { nodeId: info.nodeId, userId: info.userId, tenant: info.tenant, role: info.role, exp: info.exp };
      this.setStatus({ state: 'connected', ...this.sessionInfo });
      for (const [room, entry] of this.rooms) void this.join(room, entry);
    });
    s.on('event', (event) => {
      // Sent once per room it went to: each subscribed room takes it once, by its offset there.
      if (!Array.isArray(event?.rooms)) return;
      for (const room of event.rooms) this.rooms.get(room)?.stream.live(event);
    });
    s.on('presence', (diff) => {
      const entry = this.rooms.get(diff.room);
      if (!entry) return;
      for (const userId of diff.leaves) entry.members.delete(userId);
      for (const m of [...diff.joins, ...diff.updates]) entry.members.set(m.userId, m);
      this.emit('presence', { room: diff.room, members: [...entry.members.values()], diff });
    });
    s.on('resync', ({ rooms }) => {
      for (const room of rooms) {
        const entry = this.rooms.get(room);
        if (entry) void this.join(room, entry);
      }
    });
    s.on('auth:expiring', () => void this.refreshToken());
    s.on('auth:expired', () => {
      this.expired = true;
    });
    s.on('server:reconnect', () => {
      // The node is draining: leave now and come back (through the load balancer) to another one.
      s.disconnect();
      this.scheduleReconnect();
    });
    s.on('server:disconnect', (info) => {
      this.told = FluxoError.fromBody(info);
      this.emit('disconnect', this.told);
    });
    s.on('disconnect', (reason) => {
      const told = reason === 'io server disconnect' ? this.told : null;
      this.told = null;
      if (this.closed || reason === 'io client disconnect') return;
      if (told && FATAL.has(told.code)) {
        this.setStatus({ state: 'offline', reason: told.code, error: told, retrying: false });
        return;
      }
      if (this.expired || told?.code === 'token_expired') void this.refreshThenReconnect();
      else this.scheduleReconnect(told?.retryAfterMs ?? 0);
    });
    s.on('connect_error', (err: Error & { data?: { code?: string; message?: string; retryAfterMs?: number } }) => {
      if (this.closed) return;
      const code = err.data?.code;
      if (code === 'token_expired' && this.opts.getToken) {
        void this.refreshThenReconnect();
        return;
      }
      if (code && (FATAL.has(code) || code === 'token_expired')) {
        const error = FluxoError.fromBody({ code: code as never, message: err.data?.message ?? err.message });
        this.setStatus({ state: 'offline', reason: code, error, retrying: false });
        return;
      }
      // A refused handshake (rate_limited) says when to come back; never sooner.
      this.scheduleReconnect(err.data?.retryAfterMs ?? 0);
    });
  }

  /**
   * (Re)subscribes a room from its position, one subscribe at a time per room (one asked for
   * meanwhile runs after). A subscribe that times out or fails with a retryable error is retried
   * with back-off while connected (the next connect resubscribes anyway); after three failures the
   * error is also reported. A final refusal (forbidden, not_found, …) drops the room and reports it.
   */
  private async join(room: string, entry: Room): Promise<void> {
    if (entry.joining) {
      entry.rejoin = true;
      return;
    }
    entry.joining = true;
    try {
      for (let attempt = 0; this.rooms.get(room) === entry && this.current.state === 'connected' && !this.closed; attempt++) {
        try {
          await this.syncRoom(room, entry);
          return;
        } catch (err) {
          const error = err instanceof FluxoError ? err : new FluxoError('internal', String(err));
          if (error.code === 'disconnected' || error.code === 'closed') return; // the next `hello` resubscribes
          if (!error.retryable) {
            this.dropRoom(room, entry, error);
            return;
          }
          if (attempt === 2) this.emit('error', error);
          await new Promise((r) => setTimeout(r, Math.max(error.retryAfterMs ?? 0, backoffDelay(attempt, this.opts.backoff))));
        }
      }
    } finally {
      entry.joining = false;
      if (entry.rejoin && this.rooms.get(room) === entry) {
        entry.rejoin = false;
        void this.join(room, entry);
      }
    }
  }

  /** One subscribe of the room, paging on while the replay is truncated, then hands all to its stream. */
  private async syncRoom(room: string, entry: Room): Promise<void> {
    entry.rejoin = false;
    const events: FluxoEvent[] = [];
    let after = entry.stream.resumeAfter;
    let first: SubscribeResult | undefined;
    let last: SubscribeResult;
    for (;;) {
      last = await this.request('subscribe', { room, ...(after !== undefined ? { after } : {}) });
      first ??= last;
      events.push(...last.events);
      if (!last.truncated || last.events.length === 0) break;
      after = last.events[last.events.length - 1]!.id;
    }
    if (this.rooms.get(room) !== entry) return; // unsubscribed meanwhile
    entry.members = new Map(last.presence.map((m) => [m.userId, m]));
    // The first page's head was read before any of the replay: that is what tells cuts apart.
    entry.stream.synced(first.position, events);
    entry.ready?.resolve({ ...last, events, position: first.position });
    entry.ready = null;
    this.emit('presence', { room, members: [...entry.members.values()], diff: null });
    if (entry.presenceState) void this.request('presence:update', { room, state: entry.presenceState }).catch(() => {});
  }

  private dropRoom(room: string, entry: Room, error: FluxoError): void {
    entry.stream.close();
    if (this.rooms.get(room) === entry) this.rooms.delete(room);
    entry.ready?.reject(error);
    entry.ready = null;
    this.emit('error', error);
  }

  private dispatch(entry: Room, event: FluxoEvent): void {
    for (const handler of [...entry.handlers]) {
      try {
        handler(event);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }

  private scheduleReconnect(minDelayMs = 0): void {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    const delayMs = Math.max(minDelayMs, backoffDelay(this.attempt, this.opts.backoff));
    this.attempt++;
    if (this.attempt > (this.opts.offlineAfterAttempts ?? 3)) {
      if (this.current.state !== 'offline') this.setStatus({ state: 'offline', reason: 'unreachable', retrying: true });
    } else {
      this.setStatus({ state: 'reconnecting', attempt: this.attempt, delayMs });
    }
    this.retryTimer = setTimeout(() => {
      if (!this.closed && !this.socket.connected) this.socket.connect();
    }, delayMs);
  }

  private async refreshThenReconnect(): Promise<void> {
    if (!this.opts.getToken) {
      const error = new FluxoError('token_expired', 'The token expired and no getToken callback was given.');
      this.setStatus({ state: 'offline', reason: 'token_expired', error, retrying: false });
      return;
    }
    try {
      this.token = await this.opts.getToken();
      this.expired = false;
    } catch (err) {
      this.emit('error', new FluxoError('token_expired', `getToken failed: ${String(err)}`));
    }
    this.scheduleReconnect();
  }

  /** Fetches a new token and hands it to the live connection (`auth:refresh`). */
  refreshToken(): Promise<void> {
    if (!this.opts.getToken) return Promise.resolve();
    this.refreshing ??= (async () => {
      try {
        const token = await this.opts.getToken!();
        this.token = token;
        const { exp } = await this.request('auth:refresh', { token });
        if (this.sessionInfo) this.sessionInfo = { ...this.sessionInfo, exp };
        this.emit('token', { exp });
      } catch (err) {
        this.emit('error', err instanceof FluxoError ? err : new FluxoError('token_expired', `token refresh failed: ${String(err)}`));
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** Emits with an ack; resolves with `data`, rejects with a FluxoError. */
  private request<E extends keyof ClientToServerEvents>(
    event: E,
    payload: Parameters<ClientToServerEvents[E]>[0],
  ): Promise<AckData<ClientToServerEvents[E]>> {
    if (this.closed) return Promise.reject(new FluxoError('closed', 'The client is closed.'));
    if (!this.socket.connected) return Promise.reject(new FluxoError('disconnected', 'Not connected.'));
    const timeoutMs = this.opts.ackTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const onDisconnect = () => finish(() => reject(new FluxoError('disconnected', `Disconnected before "${event}" was answered.`)));
      const timer = setTimeout(
        () => finish(() => reject(new FluxoError('timeout', `No answer to "${event}" in ${timeoutMs} ms.`))),
        timeoutMs,
      );
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.socket.off('disconnect', onDisconnect);
        fn();
      };
      this.socket.once('disconnect', onDisconnect);
      const emit = this.socket.emit as (e: string, p: unknown, ack: (r: Ack<unknown>) => void) => void;
      emit.call(this.socket, event, payload, (response) =>
        finish(() => ('data' in response ? resolve(response.data as never) : reject(FluxoError.fromBody(response.error)))),
      );
    });
  }

  private setStatus(status: ConnectionStatus): void {
    this.current = status;
    this.emit('state', status);
  }
}

type AckData<F> = F extends (req: never, ack: (r: Ack<infer T>) => void) => void ? T : never;

function randomId(): string {
  // randomUUID exists in Node and in secure browser contexts; plain-HTTP pages on a LAN host are not secure.
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

/** Opens a Fluxo connection. */
export function connect(opts: ConnectOptions): FluxoClient {
  return new FluxoClient(opts);
}
