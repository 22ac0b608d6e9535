import { io, type Socket } from 'socket.io-client';
import { ERRORS, isErrorCode } from '../errors.js';
// Types only: the contract's values bring zod, which the SDK does not ship.
import type {
  Ack,
  ClientEventName,
  ClientToServerEvents,
  ConnectError,
  FluxoEvent,
  PresenceDiff,
  PresenceMember,
  PresenceState,
  ReplyOf,
  RequestOf,
  Role,
  RoomPosition,
  ServerToClientEvents,
  ServerUnsubscribe,
  SubscribeResult,
  TransitionResult,
} from '../protocol.js';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { Emitter } from './emitter.js';
import { FluxoError } from './errors.js';
import { FluxoHttp, type TransitionOptions } from './http.js';
import { protocolMismatch } from './protocol-version.js';
import { DEFAULT_REFRESH_LIMIT, type RefreshLimit, refreshDelayMs } from './refresh.js';
import { type RoomGap, RoomStream } from './room-stream.js';

export type FluxoSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface ConnectOptions {
  /** Base URL of Fluxo (or of the load balancer), e.g. `http://localhost:8080`. In a page served by Fluxo: `location.origin`. */
  url: string;
  /** A JWT. Without it (and without getToken) the session cookie is used: browsers only. */
  token?: string;
  /**
   * Returns a fresh token. Called before the token expires (a quarter of its remaining lifetime
   * ahead, at most a minute; never more often than the server's `auth:refresh` budget allows) and
   * when a reconnect is refused with `token_expired`.
   */
  getToken?: () => Promise<string>;
  /** Reconnect delays. */
  backoff?: BackoffOptions;
  /** Failed reconnects after which the state reads `offline` (retries go on). @default 3 */
  offlineAfterAttempts?: number;
  /** How long a request waits for its ack, in ms. @default 10000 */
  ackTimeoutMs?: number;
  /**
   * How long a call made while not connected (`transition`, `setPresence`, …) waits for the
   * connection before it rejects with `offline`. A client that has given up for good (`offline`,
   * `retrying: false`) rejects at once. @default 10000
   */
  offlineTimeoutMs?: number;
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
  /** The server's protocol version (`hello.protocol`); null for a server older than versioning (it speaks 1.0). */
  protocol: string | null;
}

export type ConnectionStatus =
  | { state: 'connecting' }
  | ({ state: 'connected' } & Session)
  | { state: 'reconnecting'; attempt: number; delayMs: number }
  | { state: 'offline'; reason: string; error?: FluxoError; retrying: boolean };

export type ConnectionState = ConnectionStatus['state'];

export interface PresenceChange {
  room: string;
  /** As `presence(room)`: the room's members, unless `truncated`. */
  members: PresenceMember[];
  /** As `presenceCount(room)`. */
  count: number;
  /** As `presenceTruncated(room)`: `members` is not the room's list. */
  truncated: boolean;
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
  /**
   * A room's subscription ended without the application asking: the server took this connection
   * out of it (`server:unsubscribe`: `error.code` is `unsubscribed_by_operator`), or refused to
   * subscribe it (again) for good (`forbidden`, `not_found`, …; also emitted as `error`). Its
   * handlers get nothing more and the SDK does not subscribe it again — not after a reconnect nor
   * on `resync`; `subscribe` it again if the application should.
   */
  unsubscribed: (info: { room: string; error: FluxoError }) => void;
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

interface Room {
  stream: RoomStream;
  handlers: Set<EventHandler>;
  members: Map<string, PresenceMember>;
  /** Distinct users in the room: `members.size` unless `truncated`, else the last count the server gave. */
  count: number;
  /** The room has more connections than the server lists (PRESENCE_MAX_CONNECTIONS), or had since the last subscribe. */
  truncated: boolean;
  /** Re-applied after every reconnect: presence lives with the connection. */
  presenceState: PresenceState | null;
  ready: { resolve: (r: SubscribeResult) => void; reject: (e: FluxoError) => void } | null;
  /** Settles with the first subscribe ack; shared by every handler of the room. */
  firstAck: Promise<SubscribeResult>;
  /** A (re)subscribe is in flight; another was asked for meanwhile (`rejoin`): run it after. */
  joining: boolean;
  rejoin: boolean;
  /** The server took the connection out of the room (`server:unsubscribe`). */
  takenAway: boolean;
}

/**
 * Whether an error the server gave with a refused handshake or a disconnect ends the connection for
 * good: the catalog's `retryable` (shared/errors.ts) decides — `token_invalid`, `token_revoked`,
 * `unauthorized`, `forbidden`, … are final; `rate_limited`, `not_ready`, `store_unavailable`,
 * `auth_unavailable`, `internal` are retried. A failure without a code (the server or the network
 * is down, a proxy refused the transport) is retried. Two codes are decided before this:
 * `token_expired` (a fresh token from getToken) and `origin_not_allowed` (the next transport).
 */
function isFinal(code: string | undefined): boolean {
  return isErrorCode(code) && !ERRORS[code].retryable;
}

type Transport = 'websocket' | 'polling';

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
  /** The HTTP API with this client's credentials (its latest token, else the session cookie). */
  readonly http: FluxoHttp;
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
  private readonly transports: Transport[];
  /** Transports whose handshake was refused with `origin_not_allowed` since the last connect. */
  private readonly refusedTransports = new Set<string>();
  /** The transport the current Engine.IO session was opened with: its handshake's headers are what the server judged. */
  private handshakeTransport: string | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the next token refresh is due (ms since epoch, this client's clock), while one is scheduled. */
  private refreshDue: number | null = null;
  /** When the last `auth:refresh` was sent (this client's clock). */
  private lastRefreshAt = Number.NEGATIVE_INFINITY;
  /** No refresh before this (after a failed one). */
  private refreshNotBefore = 0;
  /** The server's clock minus this client's, from `hello`. */
  private clockSkewMs = 0;
  private refreshLimit: RefreshLimit = DEFAULT_REFRESH_LIMIT;

  constructor(opts: ConnectOptions) {
    super();
    this.opts = opts;
    this.token = opts.token;
    this.transports = [...(opts.transports ?? ['websocket', 'polling'])];
    this.socket = io(opts.url, {
      autoConnect: false,
      // Reconnection is ours: it must refresh tokens and resubscribe, and Socket.IO does not retry middleware refusals.
      reconnection: false,
      forceNew: true,
      transports: [...this.transports],
      tryAllTransports: true,
      withCredentials: true,
      path: opts.path ?? '/socket.io/',
      extraHeaders: opts.headers ?? {},
      // A function, so every reconnect sends the latest token.
      auth: (cb) => cb(this.token ? { token: this.token } : {}),
    });
    this.http = new FluxoHttp({
      url: opts.url,
      token: () => this.token,
      ...(opts.getToken
        ? {
            getToken: async () => {
              this.token = await opts.getToken!();
              return this.token;
            },
          }
        : {}),
      timeoutMs: opts.ackTimeoutMs ?? 10_000,
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

  /** When the next token refresh is due (ms since epoch), or null when none is scheduled (no getToken, not connected). */
  get nextRefreshAt(): number | null {
    return this.refreshDue;
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
        count: 0,
        truncated: false,
        presenceState: null,
        ready: null,
        firstAck: Promise.resolve(null as never),
        joining: false,
        rejoin: false,
        takenAway: false,
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

  /**
   * Who is in a subscribed room now. Not while `presenceTruncated(room)`: a room of more connections
   * than the server lists (its PRESENCE_MAX_CONNECTIONS) starts empty here, and once it is back under that
   * bound holds only the users who joined or changed since — `presenceCount(room)` says how many
   * there are; the whole list comes back with the next subscribe (after a reconnect or a `resync`).
   */
  presence(room: string): PresenceMember[] {
    return [...(this.rooms.get(room)?.members.values() ?? [])];
  }

  /**
   * How many distinct users are in a subscribed room (0 before its first ack): the list's length,
   * or, while `presenceTruncated(room)`, the last count the server gave — the subscribe ack's, then
   * each diff's once the room is back under the bound (a room over it sends none).
   */
  presenceCount(room: string): number {
    return this.rooms.get(room)?.count ?? 0;
  }

  /** Whether `presence(room)` is not the room's whole list (see there): until the next subscribe. */
  presenceTruncated(room: string): boolean {
    return this.rooms.get(room)?.truncated ?? false;
  }

  /**
   * Sets this connection's presence state in a subscribed room; kept and re-sent after reconnects.
   * Set while not connected, it is kept and resolves once connected again (the resubscribe that
   * follows sends it), within `offlineTimeoutMs`; else it rejects with `offline`.
   */
  async setPresence(room: string, state: PresenceState): Promise<void> {
    const entry = this.rooms.get(room);
    if (!entry) throw new FluxoError('invalid_room', 'Subscribe to the room first.');
    entry.presenceState = state;
    if (this.closed || this.current.state === 'connected') await this.request('presence:update', { room, state });
    else await this.whenConnected(this.offlineTimeoutMs);
  }

  /**
   * Moves a process to stage `to`. Resolves with the new process and its event; rejects with a
   * FluxoError (`version_conflict` with `body.current`, `invalid_transition`, `rate_limited`, …).
   * A request cut by a disconnect is retried once connected again, with the same requestId, so it
   * is applied at most once; one answered `request_in_progress` (the first try is still being
   * written) is asked again after a back-off, and gets the stored result. Always settles: each try
   * waits at most `ackTimeoutMs` for its answer and `offlineTimeoutMs` for a connection; a client
   * offline for good rejects with `offline` at once (a try cut by the disconnect may have been
   * applied: retry with the same `requestId`).
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
        return await this.call('process:transition', req);
      } catch (err) {
        const lost = err instanceof FluxoError && (err.code === 'timeout' || err.code === 'disconnected');
        const busy = err instanceof FluxoError && err.code === 'request_in_progress';
        if ((!lost && !busy) || tries >= 2 || this.closed) throw err;
        if (busy) await new Promise((r) => setTimeout(r, backoffDelay(tries, this.opts.backoff)));
        else await this.whenConnected(this.offlineTimeoutMs);
      }
    }
  }

  /** Disconnects for good; the state becomes `offline`. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.cancelRefresh();
    for (const entry of this.rooms.values()) entry.stream.close();
    this.socket.disconnect();
    this.setStatus({ state: 'offline', reason: 'closed', retrying: false });
  }

  /**
   * Resolves when connected (at once if already). Rejects with `closed` after `close()`, with
   * `offline` (its `cause` saying why) once the client has given up for good — at once if it already
   * has — and with `offline` (retryable) when `timeoutMs` passes first.
   */
  whenConnected(timeoutMs?: number): Promise<void> {
    // The state may still read `connected` just after a disconnect (while a token is fetched).
    if (this.current.state === 'connected' && this.socket.connected) return Promise.resolve();
    const over = this.gaveUp();
    if (over) return Promise.reject(over);
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (fn: () => void) => {
        off();
        clearTimeout(timer);
        fn();
      };
      const off = this.on('state', (s) => {
        if (s.state === 'connected') settle(resolve);
        else {
          const e = this.gaveUp();
          if (e) settle(() => reject(e));
        }
      });
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => settle(() => reject(new FluxoError('offline', `Not connected within ${timeoutMs} ms (${this.current.state}).`))),
          timeoutMs,
        );
      }
    });
  }

  /** The error for a client that will not connect again (closed, or offline for good); null while it may. */
  private gaveUp(): FluxoError | null {
    if (this.closed) return new FluxoError('closed', 'The client is closed.');
    const s = this.current;
    if (s.state !== 'offline' || s.retrying) return null;
    const cause = s.error ?? new FluxoError('closed', `Offline: ${s.reason}.`);
    return new FluxoError('offline', `Offline for good: ${cause.message}`, undefined, cause);
  }

  private get offlineTimeoutMs(): number {
    return this.opts.offlineTimeoutMs ?? 10_000;
  }

  /** Offline for good: no reconnect, no refresh; the application reads `reason` and `error`. */
  private giveUp(reason: string, error: FluxoError): void {
    clearTimeout(this.retryTimer);
    this.cancelRefresh();
    this.setStatus({ state: 'offline', reason, error, retrying: false });
  }

  /**
   * After `origin_not_allowed`: the server judged the page from the headers of one transport's
   * handshake (a long-polling GET carries no Origin, a WebSocket handshake does), so another
   * transport may be accepted. Reconnects with the transports not refused yet; false when none is left.
   */
  private tryOtherTransport(): boolean {
    const used = this.handshakeTransport;
    if (!used) return false;
    this.refusedTransports.add(used);
    const left = this.transports.filter((t) => !this.refusedTransports.has(t));
    if (left.length === 0) return false;
    this.socket.io.opts.transports = left;
    this.scheduleReconnect();
    return true;
  }

  private wire(): void {
    const s = this.socket;
    s.io.on('open', () => {
      this.handshakeTransport = s.io.engine?.transport?.name ?? null;
    });
    s.on('hello', (info) => {
      const mismatch = protocolMismatch(info.protocol);
      if (mismatch) {
        // Another major would be misread: stop before subscribing or sending anything.
        this.giveUp('protocol_mismatch', mismatch);
        s.disconnect();
        this.emit('error', mismatch);
        return;
      }
      this.attempt = 0;
      this.expired = false;
      this.refusedTransports.clear();
      s.io.opts.transports = [...this.transports];
      if (typeof info.now === 'number') this.clockSkewMs = info.now - Date.now();
      if (info.refreshLimit) this.refreshLimit = info.refreshLimit;
      this.sessionInfo = {
        nodeId: info.nodeId,
        userId: info.userId,
        tenant: info.tenant,
        role: info.role,
        exp: info.exp,
        protocol: info.protocol ?? null,
      };
      this.setStatus({ state: 'connected', ...this.sessionInfo });
      for (const [room, entry] of this.rooms) void this.join(room, entry);
      this.scheduleRefresh();
    });
    s.on('event', (event) => {
      // Sent once per room it went to: each subscribed room takes it once, by its offset there.
      if (!Array.isArray(event?.rooms)) return;
      for (const room of event.rooms) this.rooms.get(room)?.stream.live(event);
    });
    s.on('presence', (diff) => {
      const entry = this.rooms.get(diff.room);
      if (!entry) return;
      // The room went over the bound: the list stops being kept, so it is dropped rather than left stale.
      if (diff.truncated) {
        entry.members.clear();
        entry.truncated = true;
      }
      for (const userId of diff.leaves) entry.members.delete(userId);
      for (const m of [...diff.joins, ...diff.updates]) entry.members.set(m.userId, m);
      entry.count = entry.truncated ? (diff.count ?? entry.count) : entry.members.size;
      this.emitPresence(diff.room, entry, diff);
    });
    s.on('resync', ({ rooms }) => {
      for (const room of rooms) {
        const entry = this.rooms.get(room);
        if (entry) void this.join(room, entry);
      }
    });
    s.on('server:unsubscribe', (info) => this.onTakenAway(info));
    s.on('auth:expiring', (info) => this.onExpiring(info));
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
      this.cancelRefresh();
      if (this.closed || reason === 'io client disconnect') return;
      if (told && told.code !== 'token_expired' && isFinal(told.code)) {
        this.giveUp(told.code, told);
        return;
      }
      if (this.expired || told?.code === 'token_expired') void this.refreshThenReconnect();
      else this.scheduleReconnect(told?.retryAfterMs ?? 0);
    });
    s.on('connect_error', (err: ConnectError) => {
      if (this.closed) return;
      const code = err.data?.code;
      if (code === 'token_expired' && this.opts.getToken) {
        void this.refreshThenReconnect();
        return;
      }
      if (code === 'origin_not_allowed' && this.tryOtherTransport()) return;
      if (code !== undefined && (code === 'token_expired' || isFinal(code))) {
        const error = FluxoError.fromBody({ code, message: err.data?.message ?? err.message });
        this.giveUp(code, error);
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
      if (this.rooms.get(room) !== entry) {
        this.abandoned(room, entry);
        return;
      }
      first ??= last;
      events.push(...last.events);
      if (!last.truncated || last.events.length === 0) break;
      after = last.events[last.events.length - 1]!.id;
    }
    entry.members = new Map(last.presence.map((m) => [m.userId, m]));
    // Both absent from a server without the bound (one older than protocol versioning): the list is whole.
    entry.truncated = last.presenceTruncated ?? false;
    entry.count = last.presenceCount ?? entry.members.size;
    // The first page's head was read before any of the replay: that is what tells cuts apart.
    entry.stream.synced(first.position, events);
    entry.ready?.resolve({ ...last, events, position: first.position });
    entry.ready = null;
    this.emitPresence(room, entry, null);
    if (entry.presenceState) void this.request('presence:update', { room, state: entry.presenceState }).catch(() => {});
  }

  private emitPresence(room: string, entry: Room, diff: PresenceDiff | null): void {
    this.emit('presence', { room, members: [...entry.members.values()], count: entry.count, truncated: entry.truncated, diff });
  }

  /**
   * Ends a subscription the application did not end (see the `unsubscribed` event): a final refusal
   * of its subscribe is also an `error`; the server's `server:unsubscribe` is a notice, not a failure.
   */
  private dropRoom(room: string, entry: Room, error: FluxoError, failed = true): void {
    entry.stream.close();
    if (this.rooms.get(room) === entry) this.rooms.delete(room);
    entry.ready?.reject(error);
    entry.ready = null;
    this.emit('unsubscribed', { room, error });
    if (failed) this.emit('error', error);
  }

  /**
   * `server:unsubscribe`: the server took this connection out of the room and no event of it follows
   * on this connection. The room is dropped as if the application had unsubscribed, so neither the
   * next connect nor a `resync` subscribes it again behind the operator's back.
   */
  private onTakenAway(info: ServerUnsubscribe): void {
    const entry = this.rooms.get(info.room);
    if (!entry) return;
    entry.takenAway = true;
    this.dropRoom(info.room, entry, FluxoError.fromBody(info), false);
  }

  /**
   * A subscribe answered after its room was dropped. Dropped by the application: its `unsubscribe`
   * went out after this subscribe, and the server runs them in order. Taken away by the server: a
   * subscribe sent before the notice arrived may have put the connection back in the room, so it
   * is undone — unless the application has subscribed the room again since.
   */
  private abandoned(room: string, entry: Room): void {
    if (entry.takenAway && !this.rooms.has(room)) void this.request('unsubscribe', { room }).catch(() => {});
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
      if (this.closed || this.socket.connected) return;
      this.handshakeTransport = null;
      this.socket.connect();
    }, delayMs);
  }

  private async refreshThenReconnect(): Promise<void> {
    if (!this.opts.getToken) {
      this.giveUp('token_expired', new FluxoError('token_expired', 'The token expired and no getToken callback was given.'));
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

  /**
   * Fetches a new token and hands it to the live connection (`auth:refresh`), then schedules the
   * next refresh. The SDK calls it itself, on a schedule (`scheduleRefresh`); calling it sooner
   * spends the same `auth:refresh` budget.
   */
  refreshToken(): Promise<void> {
    if (!this.opts.getToken) return Promise.resolve();
    this.refreshing ??= (async () => {
      this.cancelRefresh();
      try {
        const token = await this.opts.getToken!();
        this.token = token;
        if (!this.socket.connected) return; // the handshake of the next connect carries it
        this.lastRefreshAt = Date.now();
        const { exp } = await this.request('auth:refresh', { token });
        if (this.sessionInfo) this.sessionInfo = { ...this.sessionInfo, exp };
        this.emit('token', { exp });
      } catch (err) {
        const error = err instanceof FluxoError ? err : new FluxoError('token_expired', `token refresh failed: ${String(err)}`);
        // Tried again no sooner than the budget allows, nor than a rate_limited refusal says.
        this.refreshNotBefore = Date.now() + (error.retryAfterMs ?? 0);
        this.lastRefreshAt = Date.now();
        // Cut by a disconnect: the reconnect carries the new token; nothing to report.
        if (error.code !== 'disconnected') this.emit('error', error);
      } finally {
        this.refreshing = null;
        if (this.current.state === 'connected') this.scheduleRefresh();
      }
    })();
    return this.refreshing;
  }

  /** Arms the one refresh timer for the current token (`refreshDelayMs` says when). */
  private scheduleRefresh(): void {
    this.cancelRefresh();
    if (!this.opts.getToken || !this.sessionInfo || this.closed || this.refreshing) return;
    const now = Date.now();
    const remainingMs = this.sessionInfo.exp * 1000 - (now + this.clockSkewMs);
    const delay = refreshDelayMs(remainingMs, now - this.lastRefreshAt, this.refreshLimit, this.refreshNotBefore - now);
    this.refreshDue = now + delay;
    // setTimeout fires at once for delays past 2^31 - 1 ms (~24.8 days): re-arm instead.
    const MAX_TIMER_MS = 2_147_000_000;
    this.refreshTimer = setTimeout(
      () => (delay > MAX_TIMER_MS ? this.scheduleRefresh() : void this.refreshToken()),
      Math.min(delay, MAX_TIMER_MS),
    );
  }

  private cancelRefresh(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.refreshDue = null;
  }

  /**
   * The server's warning (a minute before `exp`). The SDK's own timer normally refreshes first; the
   * warning only hurries a refresh that is late (a timer throttled in a background tab) or missing,
   * and never past the budget — it used to refresh on every warning, which for a token living less
   * than ~70 s came every few seconds until `auth:refresh` was rate-limited.
   */
  private onExpiring(info: { exp: number; inMs: number }): void {
    if (!this.opts.getToken || this.refreshing || !this.sessionInfo || info.exp !== this.sessionInfo.exp) return;
    const now = Date.now();
    if (this.refreshDue !== null && this.refreshDue > now && this.refreshDue < now + info.inMs) return;
    this.cancelRefresh();
    const delay = refreshDelayMs(0, now - this.lastRefreshAt, this.refreshLimit, this.refreshNotBefore - now);
    this.refreshDue = now + delay;
    this.refreshTimer = setTimeout(() => void this.refreshToken(), delay);
  }

  /**
   * `request` for the application's calls: made while not connected, it waits for the connection,
   * at most `offlineTimeoutMs` (then `offline`; at once when the client has given up for good).
   */
  private async call<E extends ClientEventName>(event: E, payload: RequestOf<E>): Promise<ReplyOf<E>> {
    if (!this.closed && !this.socket.connected) await this.whenConnected(this.offlineTimeoutMs);
    return this.request(event, payload);
  }

  /** Emits with an ack; resolves with `data`, rejects with a FluxoError (`disconnected` at once when not connected). */
  private request<E extends ClientEventName>(event: E, payload: RequestOf<E>): Promise<ReplyOf<E>> {
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
      // Socket.IO's typed emit cannot take an event name that is a type parameter: the contract's own shape, spelled out.
      const emit = this.socket.emit as (e: E, p: RequestOf<E>, ack: (r: Ack<ReplyOf<E>>) => void) => void;
      emit.call(this.socket, event, payload, (response) =>
        finish(() => ('data' in response ? resolve(response.data) : reject(FluxoError.fromBody(response.error)))),
      );
    });
  }

  private setStatus(status: ConnectionStatus): void {
    this.current = status;
    this.emit('state', status);
  }
}

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
