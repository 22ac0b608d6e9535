import type { Server, Socket } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/contract.js';
import type { FluxoEvent, RoomPosition } from '../../shared/model.js';
import type { Principal, TokenVerifier } from '../auth/types.js';
import type { Config } from '../config/index.js';
import type { WorkflowService } from '../domain/workflow-service.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { PresenceStore } from '../presence/presence.js';
import type { PresenceDiffs } from './presence-diffs.js';

export interface SocketData {
  principal: Principal;
  /** Tenant-relative rooms this socket subscribed to; created on the first subscribe (most sockets of a big node sit idle). */
  rooms?: Set<string>;
  /** The one pending timer of armExpiry: the warning first, then the expiry. */
  expiryTimer?: NodeJS.Timeout;
  /** The replay page after a truncated one, read while the client is still receiving that one. */
  replayAhead?: ReplayAhead;
  /** The last of this socket's events queued or running (see `enqueue` in handlers.ts); unset when idle. */
  queue?: Promise<void>;
  /** The client IP whose MAX_SOCKETS_PER_IP slot (and whose user's slot) this socket holds; unset once freed (io.ts). */
  ip?: string;
  /** The socket's `events` budget: when its window ends, and how many events came in it (see `spend` in handlers.ts). */
  budgetResetAt?: number;
  budgetUsed?: number;
}

/** Events of a room after some id, in order, and whether the log holds more after the last of them. */
export interface ReplayPage {
  events: FluxoEvent[];
  more: boolean;
}

/** The next replay page of a room, read (or kept) before the client asks for it. */
export interface ReplayAhead {
  room: string;
  after: number;
  page: Promise<ReplayPage>;
}

export type FluxoSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export type FluxoServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export interface RealtimeDeps {
  io: FluxoServer;
  config: Config;
  service: WorkflowService;
  presence: PresenceStore;
  limits: RateLimits;
  verifier: TokenVerifier;
  metrics: Metrics;
  log: Logger;
  /** Coalesced presence broadcasts (built by createApp). */
  presenceDiffs: PresenceDiffs;
  /** The tail check (realtime/room-tails.ts), told of each subscribe's head; only with several nodes. */
  tails?: { subscribed(tenant: string, room: string, position: RoomPosition): void };
}
