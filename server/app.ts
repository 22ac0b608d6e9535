import { Gauge } from 'prom-client';
import { ERRORS } from '../shared/errors.js';
import { DEV_JWT_SECRET } from './auth/dev-secret.js';
import { REVOCATION_POLL_MS, Revocations } from './auth/revocations.js';
import type { TokenVerifier } from './auth/types.js';
import { createTokenVerifier } from './auth/verifier.js';
import { type Backplane, createBackplane } from './backplane.js';
import type { Config } from './config/index.js';
import { WorkflowService } from './domain/workflow-service.js';
import { adminRoutes } from './http/admin.js';
import { apiRoutes } from './http/api.js';
import { devLoginRoutes } from './http/dev-login.js';
import { createDispatch } from './http/dispatch.js';
import { opsRoutes } from './http/ops-routes.js';
import { errorResponse } from './http/respond.js';
import { Router } from './http/router.js';
import { staticRoutes } from './http/static.js';
import { createRateLimits, type RateLimits, reportingRefusals } from './limits/rate-limits.js';
import { createLogger, type Logger } from './ops/logger.js';
import { createMaintenance } from './ops/maintenance.js';
import { createMetrics, type Metrics } from './ops/metrics.js';
import { createReadiness } from './ops/readiness.js';
import { pollStoreMetrics } from './ops/store-metrics.js';
import type { FluxoServer } from './realtime/deps.js';
import { disconnectLocal, relayDisconnects } from './realtime/disconnects.js';
import { configureWebSockets, installEngineLimits } from './realtime/engine-limits.js';
import { createFanout } from './realtime/fanout.js';
import { createIo, installRealtime } from './realtime/io.js';
import { createOperator, fluxoVersion } from './realtime/operator.js';
import { PresenceDiffs } from './realtime/presence-diffs.js';
import { resyncAfterRecovery } from './realtime/resync.js';
import { RoomTails } from './realtime/room-tails.js';
import { withDeadline } from './store/deadline.js';
import { createStore } from './store/index.js';
import type { Store } from './store/store.js';
import { type HttpResponse, UwsServer } from './transport/uws.js';

/**
 * A node, built and not started (Fastify's `build()` apart from `listen()`): its parts are wired,
 * its store and Redis connections open, nothing runs yet — no migration, timer, subscription or
 * listening socket until `listen()`.
 */
export interface FluxoNode {
  readonly config: Config;
  readonly io: FluxoServer;
  readonly store: Store;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** The port it listens on (PORT=0 picks one). Throws before `listen()` resolved. */
  readonly port: number;
  /** `http://host:port`, with 127.0.0.1 for a node on 0.0.0.0. Throws before `listen()` resolved. */
  readonly url: string;
  /**
   * Starts the node: migrations (MIGRATE_ON_START) and partition maintenance, metric polling, token
   * revocations, presence and the operator survey, then listens on HOST:PORT. Resolves with `url`;
   * rejects with a ListenError when the port cannot be had.
   */
  listen(): Promise<string>;
  /**
   * Drains and stops: not ready, stop accepting, tell clients to reconnect, finish writes, close
   * every part (injected ones too). Once; later calls get the same promise.
   */
  close(): Promise<void>;
}

/** Parts built elsewhere (tests); each one not given is built from the config. The node closes them all. */
export interface AppParts {
  logger?: Logger;
  /** Give it to the injected backplane too: metrics are per node. */
  metrics?: Metrics;
  store?: Store;
  /** One node or many: adapter, presence, shared budgets, revocation broadcast, survey (server/backplane.ts). */
  backplane?: Backplane;
  verifier?: TokenVerifier;
  /** The budgets; each transport reports its own refusals on top. */
  limits?: RateLimits;
}

/** The composition root: builds one node from its parts. Start it with `listen()`. */
export async function createApp(config: Config, parts: AppParts = {}): Promise<FluxoNode> {
  const log = parts.logger ?? createLogger(config.logLevel, config.nodeId);
  const metrics = parts.metrics ?? createMetrics(config.nodeId);
  const store = parts.store ?? (await openStore(config, log));
  const self = { nodeId: config.nodeId, version: fluxoVersion(), startedAt: new Date().toISOString() };
  const backplane = parts.backplane ?? (await createBackplane(config, { log, metrics, self }));

  // Revoked tokens are held in memory and checked there: no database read per request, so
  // authentication goes on while the primary is down. A revocation made on any node applies on every
  // node within REVOCATION_POLL_MS (2 s) + replica lag (≤ REPLICA_MAX_LAG_MS), at once with Redis
  // (see server/auth/revocations.ts).
  const revocations = new Revocations({ store, broadcast: backplane.revocations, pollMs: REVOCATION_POLL_MS, logger: log });
  new Gauge({
    name: 'auth_revocations_age_seconds',
    help: 'Seconds since this node last read token revocations from the database (-1 before the first read)',
    registers: [metrics.registry],
    collect() {
      const age = revocations.ageMs;
      this.set(age === null ? -1 : age / 1000);
    },
  });
  const verifier = parts.verifier ?? buildVerifier(config, revocations, log);
  if (!config.jwt.secret && !config.jwt.jwksUrl) {
    log.warn('JWT_SECRET is not set: using the built-in DEVELOPMENT secret. Anyone can mint tokens. Never run this in production.');
  }
  if (config.devLogin) {
    log.warn('DEV_LOGIN is on: anyone who reaches this node can sign in as a demo user (POST /auth/dev-login).');
  }
  const limits =
    parts.limits ??
    createRateLimits({
      spec: config.rateLimits,
      redis: backplane.rateLimitStore?.redis,
      redisAnswering: backplane.rateLimitStore?.answering,
    });
  // Each transport counts its own refusals: http_limit_refusals_total / ws_limit_refusals_total.
  const httpLimits = reportingRefusals(limits, (limit) => metrics.httpRefusals.inc({ limit }));
  const wsLimits = reportingRefusals(limits, (limit) => metrics.wsRefusals.inc({ limit }));
  const { presence, survey } = backplane;

  const io = createIo(config);
  if (backplane.adapter) {
    io.adapter(backplane.adapter);
    // Only a cross-node adapter can carry disconnects to the other nodes.
    relayDisconnects(io);
  }
  if (backplane.recoveries) resyncAfterRecovery(io, backplane.recoveries, { metrics, log });
  // With several nodes, events whose node died between COMMIT and publish are sent from the log.
  const tails =
    backplane.adapter && config.roomTailCheckMs > 0
      ? new RoomTails({
          io,
          heads: (keys) => store.roomHeads(keys),
          eventsAfter: (tenant, room, after, limit) => store.eventsAfter(tenant, room, after, limit),
          everyMs: config.roomTailCheckMs,
          metrics,
          log,
        })
      : undefined;
  const fanout = createFanout(io, metrics, { relay: backplane.relay, sent: tails && ((room, offset, id) => tails.sent(room, offset, id)) });
  const service = new WorkflowService(store, fanout, metrics, config.readYourWritesMs);
  const presenceDiffs = new PresenceDiffs(io, presence, config.presenceMaxConnections, (err) =>
    log.warn({ err: (err as Error).message }, 'presence diffs not sent'),
  );
  installRealtime({ io, config, service, presence, limits: wsLimits, verifier, metrics, log, presenceDiffs, tails });
  const operator = createOperator({ io, survey, presence, presenceDiffs, log });

  let draining = false;
  const router = new Router<HttpResponse>();
  const readiness = createReadiness({ draining: () => draining, revocations, bus: backplane, store });
  opsRoutes(router, { nodeId: config.nodeId, metrics, readiness });
  apiRoutes(router, { config, verifier, revocations, limits: httpLimits, service, io });
  adminRoutes(router, { config, verifier, limits: httpLimits, operator, log });
  devLoginRoutes(router, { config });
  staticRoutes(router, { config, verifier });

  const uws = new UwsServer({
    maxPayloadBytes: config.maxPayloadBytes,
    tooLarge: () => errorResponse({ code: 'payload_too_large', message: ERRORS.payload_too_large.message }),
    handle: createDispatch({ router, config, limits: httpLimits, metrics, log, draining: () => draining }),
  });
  configureWebSockets(uws.app, {
    maxBackpressureBytes: config.wsMaxBackpressureBytes,
    onTooBig: () => metrics.wsRefusals.inc({ limit: 'max_http_buffer_size' }),
    onSlow: () => metrics.wsRefusals.inc({ limit: 'max_backpressure' }),
  });
  uws.attach(io);
  installEngineLimits(io, { config, metrics });

  const maintenance = createMaintenance({ store, metrics, log, retentionMonths: config.eventRetentionMonths });
  let stopPolling = () => {};
  let listening: Promise<string> | null = null;
  let address: { port: number; url: string } | null = null;

  const start = async (): Promise<string> => {
    stopPolling = pollStoreMetrics(store, metrics);
    if (config.migrateOnStart) await store.migrate();
    await maintenance.start();
    // Listens to the other nodes' revocations first, so nothing falls between. The node starts
    // either way; it is not ready (and refuses tokens with store_unavailable) until the first read succeeds.
    if (!(await revocations.start())) log.warn('token revocations could not be read: not ready until they are');
    // Changes no socket of this node made (a dead node reaped, entries re-asserted) are sent like the others.
    await presence.start((room, change) => presenceDiffs.push(room, relativeRoom(room), change));
    await survey.start();
    tails?.start();
    const port = await uws.listen(config.host, config.port);
    const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
    address = { port, url: `http://${host}:${port}` };
    log.info({ port, store: store.kind }, 'fluxo listening');
    return address.url;
  };

  // Each step is awaited and its failure logged, so that one cannot skip the others (nor fail the exit).
  const step = async (what: string, fn: () => Promise<unknown> | undefined) => {
    try {
      await fn();
    } catch (err) {
      log.warn({ err, step: what }, 'shutdown step failed');
    }
  };

  const drain = async () => {
    draining = true;
    // A start still under way finishes (or fails) first: its parts are then closed like the others.
    const started =
      listening &&
      (await listening.then(
        () => true,
        () => false,
      ));
    log.info('draining');
    uws.stopListening();
    if (started) {
      // `io.local`: this node's clients only. Through the Redis adapter, `io.emit` and
      // `io.disconnectSockets` reach the clients of every node: one node's SIGTERM would move them all.
      io.local.emit('server:reconnect', { reason: 'shutdown', nodeId: config.nodeId });
      await withDeadline(config.shutdownGraceMs, () => service.waitForWrites()).catch(() =>
        log.warn('writes still in flight at the grace deadline'),
      );
      // Give clients a moment to act on server:reconnect before the sockets are cut.
      await new Promise((r) => setTimeout(r, Math.min(250, config.shutdownGraceMs)));
      disconnectLocal(io, null, 'not_ready', 'The node is draining: reconnect.');
    }
    maintenance.stop();
    await step('tail check', () => tails?.stop());
    stopPolling();
    await step('revocations', () => revocations.stop());
    // The other nodes drop this one from their operator node list at once.
    await step('survey', () => survey.stop());
    // The sockets' disconnect handlers remove their presence (Redis calls that close() waits for) and
    // queue leave diffs (one more turn of the loop for the last of them); those are sent now, while
    // Redis is open — a publish after it closed is lost (and used to be an unhandled rejection).
    await step('presence', () => presence.close());
    await new Promise((r) => setImmediate(r));
    await step('presence diffs', () => presenceDiffs.flush());
    await new Promise<void>((resolve) => io.close(() => resolve()));
    uws.close();
    // QUIT follows the publishes above on each connection, so they are delivered first.
    await step('redis', () => backplane.close());
    await step('store', () => store.close());
    log.info('stopped');
  };

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= drain();
    return closing;
  };
  const listeningAt = () => {
    if (!address) throw new Error('the node is not listening: call listen() first');
    return address;
  };

  return {
    config,
    io,
    store,
    log,
    metrics,
    get port() {
      return listeningAt().port;
    },
    get url() {
      return listeningAt().url;
    },
    listen: () => {
      if (closing) return Promise.reject(new Error('the node is closed'));
      listening ??= start();
      return listening;
    },
    close,
  };
}

function openStore(config: Config, log: Logger): Promise<Store> {
  return createStore({
    databaseUrl: config.databaseUrl,
    replicaUrls: config.replicaUrls,
    pgliteDir: config.pgliteDir,
    poolSize: config.poolSize,
    replicaMaxLagMs: config.replicaMaxLagMs,
    logger: log,
    writeTimeoutMs: config.dbWriteTimeoutMs,
    replicaTimeoutMs: config.dbReplicaTimeoutMs,
    // What one request may carry is also what a process may hold, however many transitions built it.
    maxProcessDataBytes: config.maxPayloadBytes,
    session: {
      statementTimeoutMs: config.dbStatementTimeoutMs,
      lockTimeoutMs: config.dbLockTimeoutMs,
      idleInTransactionTimeoutMs: config.dbIdleInTransactionTimeoutMs,
    },
  });
}

function buildVerifier(config: Config, revocations: Revocations, log: Logger): TokenVerifier {
  let keysWarnedAt = 0;
  return createTokenVerifier({
    // With a JWKS URL the asymmetric keys win: an HMAC secret is never accepted for that issuer.
    secret: config.jwt.jwksUrl ? undefined : (config.jwt.secret ?? DEV_JWT_SECRET),
    jwksUrl: config.jwt.jwksUrl,
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
    algorithms: config.jwt.algorithms,
    clockToleranceS: config.jwt.clockToleranceS,
    isRevoked: (key) => revocations.isRevoked(key),
    // An identity-provider outage refuses every new session (auth_unavailable): tell operators, not once per handshake.
    onKeysUnavailable: (err) => {
      if (Date.now() - keysWarnedAt < 30_000) return;
      keysWarnedAt = Date.now();
      log.warn({ err, jwksUrl: config.jwt.jwksUrl }, 'the JWKS cannot be fetched: tokens are refused with auth_unavailable');
    },
  });
}

/** `t:<tenant>:<room>` → `<room>` (tenant ids contain no ':'). */
function relativeRoom(internal: string): string {
  const rest = internal.slice(2);
  return rest.slice(rest.indexOf(':') + 1);
}
