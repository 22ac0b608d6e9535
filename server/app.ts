import { Gauge } from 'prom-client';
import { ERRORS } from '../shared/errors.js';
import { DEV_JWT_SECRET } from './auth/dev-secret.js';
import { REVOCATION_POLL_MS, Revocations } from './auth/revocations.js';
import { clientIp } from './auth/token-source.js';
import type { TokenVerifier } from './auth/types.js';
import { createTokenVerifier } from './auth/verifier.js';
import { createClusterParts } from './bus/index.js';
import { createSurvey } from './bus/survey.js';
import type { Config } from './config/index.js';
import { WorkflowService } from './domain/workflow-service.js';
import { AppError, toErrorBody } from './errors.js';
import { adminRoutes } from './http/admin.js';
import { apiRoutes } from './http/api.js';
import { corsHeaders, preflight } from './http/cors.js';
import { devLoginRoutes } from './http/dev-login.js';
import { opsRoutes } from './http/ops-routes.js';
import { errorResponse } from './http/respond.js';
import { Router } from './http/router.js';
import { staticRoutes } from './http/static.js';
import { createRateLimits, type RateLimits, reportingRefusals } from './limits/rate-limits.js';
import { createLogger, type Logger } from './ops/logger.js';
import { createMetrics, type Metrics } from './ops/metrics.js';
import { MemoryPresence } from './presence/memory.js';
import type { PresenceStore } from './presence/presence.js';
import type { FluxoServer } from './realtime/deps.js';
import { disconnectLocal } from './realtime/disconnects.js';
import { installEngineLimits, meterOversizedFrames } from './realtime/engine-limits.js';
import { createFanout } from './realtime/fanout.js';
import { createIo, installRealtime } from './realtime/io.js';
import { createOperator, fluxoVersion } from './realtime/operator.js';
import { PresenceDiffs } from './realtime/presence-diffs.js';
import { createStore } from './store/index.js';
import type { Store } from './store/store.js';
import { type HttpResponse, UwsServer } from './transport/uws.js';

export interface FluxoNode {
  readonly config: Config;
  readonly port: number;
  readonly url: string;
  readonly io: FluxoServer;
  readonly store: Store;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Drains: not ready, stop accepting, tell clients to reconnect, finish writes, close. */
  shutdown(): Promise<void>;
}

export interface AppParts {
  store?: Store;
  logger?: Logger;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** /ready's database probe: its bound, and how long its answer is reused. */
const READY_DB_TIMEOUT_MS = 1000;
const READY_CACHE_MS = 1000;

/** The composition root: builds one node from its parts and starts listening. */
export async function createApp(config: Config, parts: AppParts = {}): Promise<FluxoNode> {
  const log = parts.logger ?? createLogger(config.logLevel, config.nodeId);
  const metrics = createMetrics(config.nodeId);

  const store =
    parts.store ??
    (await createStore({
      databaseUrl: config.databaseUrl,
      replicaUrls: config.replicaUrls,
      pgliteDir: config.pgliteDir,
      poolSize: config.poolSize,
      // Read-your-writes is per user and decided by WorkflowService (it passes `fresh`).
      readYourWritesMs: 0,
      replicaMaxLagMs: config.replicaMaxLagMs,
      logger: log,
      writeTimeoutMs: config.dbWriteTimeoutMs,
      replicaTimeoutMs: config.dbReplicaTimeoutMs,
      session: {
        statementTimeoutMs: config.dbStatementTimeoutMs,
        lockTimeoutMs: config.dbLockTimeoutMs,
        idleInTransactionTimeoutMs: config.dbIdleInTransactionTimeoutMs,
      },
    }));
  let committed = { batches: 0, items: 0 };
  const lagTimer = setInterval(() => {
    // An unreachable replica is `db_replica_up 0` and has no lag sample (not a made-up number that
    // alerts and graphs would have to know to ignore); it gets one again once it answers.
    for (const r of store.replicaLag()) {
      const replica = String(r.replica);
      metrics.replicaUp.set({ replica }, r.seconds === null ? 0 : 1);
      if (r.seconds === null) metrics.replicaLag.remove({ replica });
      else metrics.replicaLag.set({ replica }, r.seconds);
    }
    const now = { ...store.commitStats };
    metrics.writeBatches.inc(now.batches - committed.batches);
    metrics.batchedWrites.inc(now.items - committed.items);
    committed = now;
  }, 1000).unref();
  if (config.migrateOnStart) await store.migrate();
  const maintain = async () => {
    try {
      // The store logs what it creates.
      await store.ensurePartitions(new Date());
      metrics.partitionsAhead.set(await store.partitionsAhead(new Date()));
      if (config.eventRetentionMonths > 0) {
        const dropped = await store.dropExpiredPartitions(new Date(), config.eventRetentionMonths);
        if (dropped.length) log.info({ dropped }, 'event-log partitions dropped by retention');
      }
      // A retry of a transition is answered from its stored result for at least a day, then forgotten.
      const pruned = await store.pruneIdempotencyKeys(new Date(Date.now() - DAY_MS));
      if (pruned > 0) log.info({ pruned }, 'old idempotency keys deleted');
    } catch (err) {
      log.error({ err }, 'partition maintenance failed');
    }
  };
  await maintain();
  const maintenanceTimer = setInterval(maintain, DAY_MS).unref();

  // Revoked tokens are held in memory and checked there: no database read per request, so
  // authentication goes on while the primary is down. A revocation made on any node applies on every
  // node within REVOCATION_POLL_MS (2 s) + replica lag (≤ REPLICA_MAX_LAG_MS), at once with Redis
  // (see server/auth/revocations.ts).
  // With Redis (REDIS_URL or REDIS_CLUSTER_NODES) this node is one of many: shared fan-out,
  // presence, revocations and rate limits. Without it everything stays in this process.
  const cluster = await createClusterParts(config, { log, metrics, revocationStore: store });
  const revocations = new Revocations({ store: cluster?.revocationStore ?? store, pollMs: REVOCATION_POLL_MS, logger: log });
  new Gauge({
    name: 'auth_revocations_age_seconds',
    help: 'Seconds since this node last read token revocations from the database (-1 before the first read)',
    registers: [metrics.registry],
    collect() {
      const age = revocations.ageMs;
      this.set(age === null ? -1 : age / 1000);
    },
  });
  let keysWarnedAt = 0;
  const verifier: TokenVerifier = createTokenVerifier({
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
  if (!config.jwt.secret && !config.jwt.jwksUrl) {
    log.warn('JWT_SECRET is not set: using the built-in DEVELOPMENT secret. Anyone can mint tokens. Never run this in production.');
  }
  if (config.devLogin) {
    log.warn('DEV_LOGIN is on: anyone who reaches this node can sign in as a demo user (POST /auth/dev-login).');
  }
  const limits: RateLimits = createRateLimits({
    spec: config.rateLimits,
    redis: cluster?.bus.client('limiter'),
    redisAnswering: () => cluster?.bus.answering('limiter') ?? true,
  });
  // Each transport counts its own refusals: http_limit_refusals_total / ws_limit_refusals_total.
  const httpLimits = reportingRefusals(limits, (limit) => metrics.httpRefusals.inc({ limit }));
  const wsLimits = reportingRefusals(limits, (limit) => metrics.wsRefusals.inc({ limit }));
  const presence: PresenceStore = cluster?.presence ?? new MemoryPresence();

  const io = createIo(config);
  await cluster?.attach(io, revocations);
  // After subscribing to the broadcasts, so nothing falls between. The node starts either way; it is
  // not ready (and refuses tokens with store_unavailable) until the first read succeeds.
  if (!(await revocations.start())) log.warn('token revocations could not be read: not ready until they are');
  const service = new WorkflowService(store, createFanout(io, metrics), metrics, config.readYourWritesMs);
  const presenceDiffs = new PresenceDiffs(io);
  installRealtime({ io, config, service, presence, limits: wsLimits, verifier, metrics, log, presenceDiffs });
  // The operator API asks every node through Redis (alone without it); see server/bus/survey.ts.
  const survey = createSurvey({
    bus: cluster?.bus ?? null,
    self: { nodeId: config.nodeId, version: fluxoVersion(), startedAt: new Date().toISOString() },
    ttlMs: config.presenceTtlMs,
    timeoutMs: config.operatorTimeoutMs,
    log,
    metrics,
  });
  const operator = createOperator({ io, survey, presence, presenceDiffs, log });
  await survey.start();

  let draining = false;
  // A primary that stops answering (down, or frozen with its connections open) makes the node not
  // ready within READY_DB_TIMEOUT_MS. /ready may be asked often: one probe at a time, its answer
  // reused for READY_CACHE_MS.
  const databaseProbe = reusedFor(READY_CACHE_MS, async () => {
    try {
      await withTimeout(store.ping(), READY_DB_TIMEOUT_MS);
      return null;
    } catch {
      return 'database unreachable';
    }
  });
  const router = new Router<HttpResponse>();
  opsRoutes(router, {
    nodeId: config.nodeId,
    metrics,
    readiness: {
      check: async () => {
        if (draining) return 'draining';
        if (!revocations.loaded) return 'token revocations not loaded';
        const redis = cluster?.bus.notReadyReason();
        if (redis) return redis;
        return databaseProbe();
      },
    },
  });
  apiRoutes(router, { config, verifier, revocations, limits: httpLimits, service, io });
  adminRoutes(router, { config, verifier, limits: httpLimits, operator, log });
  devLoginRoutes(router, { config });
  staticRoutes(router, { config, verifier });

  const uws = new UwsServer({
    maxPayloadBytes: config.maxPayloadBytes,
    tooLarge: () => errorResponse({ code: 'payload_too_large', message: ERRORS.payload_too_large.message }),
    handle: async (req) => {
      const started = process.hrtime.bigint();
      if (req.method === 'OPTIONS') {
        // Answered for every route (CORS preflights included), before any budget is spent.
        const route = router.methods(req.path);
        const res = route
          ? preflight(req, route.methods, config.allowedOrigins)
          : errorResponse({ code: 'not_found', message: `No route OPTIONS ${req.path}.` });
        metrics.httpDuration.observe(
          { route: route?.pattern ?? 'unmatched', status: String(res.status) },
          Number(process.hrtime.bigint() - started) / 1e9,
        );
        return res;
      }
      const match = router.match(req.method, req.path);
      let label = 'unmatched';
      let res: HttpResponse;
      try {
        if (!match) throw new AppError('not_found', `No route ${req.method} ${req.path}.`);
        if ('methodNotAllowed' in match) throw new AppError('method_not_allowed');
        label = match.route.pattern;
        if (draining && req.path.startsWith('/api/') && req.method !== 'GET') throw new AppError('not_ready', 'The node is draining.');
        // Sign-in routes (the demo sign-in included) are unauthenticated by nature: each costs its
        // client IP a point of `auth` before it runs (the /api routes pay in `authenticate`).
        if (label.startsWith('/auth/')) await httpLimits.consume('auth', clientIp(req.peer, req.headers, config.trustProxy));
        res = await match.route.handler({ req, params: match.params });
      } catch (err) {
        const body = toErrorBody(err);
        if (body.code === 'internal') log.error({ err, route: label }, 'request failed');
        res = errorResponse(body);
      }
      metrics.httpDuration.observe({ route: label, status: String(res.status) }, Number(process.hrtime.bigint() - started) / 1e9);
      return { ...res, headers: [...(res.headers ?? []), ...corsHeaders(req.headers.origin, config.allowedOrigins)] };
    },
  });
  meterOversizedFrames(uws.app, () => metrics.wsRefusals.inc({ limit: 'max_http_buffer_size' }));
  uws.attach(io);
  installEngineLimits(io, { config, metrics });
  const port = await uws.listen(config.host, config.port);
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  log.info({ port, store: store.kind }, 'fluxo listening');

  const drain = async () => {
    draining = true;
    log.info('draining');
    uws.stopListening();
    // `io.local`: this node's clients only. Through the Redis adapter, `io.emit` and
    // `io.disconnectSockets` reach the clients of every node: one node's SIGTERM would move them all.
    io.local.emit('server:reconnect', { reason: 'shutdown', nodeId: config.nodeId });
    await withTimeout(service.waitForWrites(), config.shutdownGraceMs).catch(() =>
      log.warn('writes still in flight at the grace deadline'),
    );
    // Give clients a moment to act on server:reconnect before the sockets are cut.
    await new Promise((r) => setTimeout(r, Math.min(250, config.shutdownGraceMs)));
    disconnectLocal(io, null, 'not_ready', 'The node is draining: reconnect.');
    clearInterval(maintenanceTimer);
    clearInterval(lagTimer);
    // Each step is awaited and its failure logged, so that one cannot skip the others (nor fail the exit).
    const step = async (what: string, fn: () => Promise<unknown> | undefined) => {
      try {
        await fn();
      } catch (err) {
        log.warn({ err, step: what }, 'shutdown step failed');
      }
    };
    await step('revocations', () => revocations.stop());
    // The other nodes drop this one from their operator node list at once.
    await step('survey', () => survey.stop());
    // The sockets' disconnect handlers remove their presence (Redis calls that close() waits for) and
    // queue leave diffs (one more turn of the loop for the last of them); those are sent now, while
    // Redis is open — a publish after it closed is lost (and used to be an unhandled rejection).
    await step('presence', () => presence.close());
    await new Promise((r) => setImmediate(r));
    presenceDiffs.flush();
    await new Promise<void>((resolve) => io.close(() => resolve()));
    uws.close();
    // QUIT follows the publishes above on each connection, so they are delivered first.
    await step('redis', () => cluster?.close());
    await step('store', () => store.close());
    log.info('stopped');
  };
  let closing: Promise<void> | null = null;
  const shutdown = () => {
    closing ??= drain();
    return closing;
  };

  return { config, port, url: `http://${host}:${port}`, io, store, log, metrics, shutdown };
}

/** `probe`, run at most once at a time; its result is reused for `ms` after it settles. */
function reusedFor<T>(ms: number, probe: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: T } | null = null;
  let running: Promise<T> | null = null;
  return () => {
    if (last && Date.now() - last.at < ms) return Promise.resolve(last.value);
    running ??= probe().then(
      (value) => {
        last = { at: Date.now(), value };
        running = null;
        return value;
      },
      (err: unknown) => {
        running = null;
        throw err;
      },
    );
    return running;
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
