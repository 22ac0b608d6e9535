import type { Server } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/protocol.js';
import type { TokenVerifier } from '../auth/types.js';
import type { Config } from '../config/index.js';
import type { WorkflowService } from '../domain/workflow-service.js';
import type { RateLimits } from '../limits/rate-limits.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { PresenceStore } from '../presence/presence.js';
import type { SocketData } from './handlers.js';
import type { PresenceDiffs } from './presence-diffs.js';

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
  /** Coalesced presence broadcasts (built by installRealtime). */
  presenceDiffs: PresenceDiffs;
}
