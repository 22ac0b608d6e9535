import { hostname } from 'node:os';
import { z } from 'zod';
import { configSchema } from './schema.js';

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  nodeId: string;
  databaseUrl: string | undefined;
  replicaUrls: string[];
  poolSize: number;
  dbWriteTimeoutMs: number;
  dbStatementTimeoutMs: number;
  dbLockTimeoutMs: number;
  dbIdleInTransactionTimeoutMs: number;
  dbReplicaTimeoutMs: number;
  pgliteDir: string | undefined;
  redisUrl: string | undefined;
  /** REDIS_CLUSTER_NODES; non-empty means Redis Cluster (sharded adapter) and REDIS_URL is ignored. */
  redisClusterNodes: { host: string; port: number }[];
  redisKeyPrefix: string;
  redisCommandTimeoutMs: number;
  presenceTtlMs: number;
  /** PRESENCE_MAX_CONNECTIONS: over it a room's list is left out of acks and it gets no diffs; 0 turns lists off. */
  presenceMaxConnections: number;
  replicaMaxLagMs: number;
  jwt: {
    secret: string | undefined;
    jwksUrl: string | undefined;
    issuer: string | undefined;
    audience: string | undefined;
    algorithms: string[] | undefined;
    clockToleranceS: number;
  };
  cookieName: string;
  cookieSecure: boolean;
  allowedOrigins: string[];
  trustProxy: string[];
  maxPayloadBytes: number;
  /** Socket.IO `maxHttpBufferSize`: the hard cap of one Engine.IO message (WebSocket frame, polling POST). */
  maxHttpBufferSize: number;
  /** WS_MAX_BACKPRESSURE_BYTES: queued for one WebSocket before it is cut. */
  wsMaxBackpressureBytes: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  connectTimeoutMs: number;
  maxSocketsPerUser: number;
  /** MAX_ROOMS_PER_SOCKET. */
  maxRoomsPerSocket: number;
  maxSocketsPerIp: number;
  maxSessionsPerIp: number;
  rateLimits: string;
  publishApiKey: string | undefined;
  /** OPERATOR_API_KEY: the operator API for every tenant; unset, only tenant `admin` tokens reach it. */
  operatorApiKey: string | undefined;
  operatorTimeoutMs: number;
  logLevel: string;
  shutdownGraceMs: number;
  migrateOnStart: boolean;
  eventRetentionMonths: number;
  readYourWritesMs: number;
  /** ROOM_TAIL_CHECK_MS: see realtime/room-tails.ts; 0 = off. */
  roomTailCheckMs: number;
  devLogin: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once. Throws ConfigError with one line per bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "unset" (compose files and shells often export VAR=).
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${String(i.path[0] ?? 'config')}: ${i.message}`);
    throw new ConfigError(`invalid configuration — ${lines.join('; ')}`);
  }
  const c = parsed.data;
  if (c.NODE_ENV === 'production' && !c.JWT_SECRET && !c.JWT_JWKS_URL) {
    throw new ConfigError('invalid configuration — JWT_SECRET or JWT_JWKS_URL: one is required when NODE_ENV=production');
  }
  const maxHttpBufferSize = c.MAX_HTTP_BUFFER_SIZE ?? 4 * c.MAX_PAYLOAD_BYTES;
  if (maxHttpBufferSize < c.MAX_PAYLOAD_BYTES) {
    throw new ConfigError(
      `invalid configuration — MAX_HTTP_BUFFER_SIZE: ${maxHttpBufferSize} is below MAX_PAYLOAD_BYTES (${c.MAX_PAYLOAD_BYTES}); messages in between would be cut instead of answered`,
    );
  }
  // One key, one power: a backend that may publish must not also be able to disconnect everyone.
  if (c.OPERATOR_API_KEY !== undefined && c.OPERATOR_API_KEY === c.PUBLISH_API_KEY) {
    throw new ConfigError('invalid configuration — OPERATOR_API_KEY: must differ from PUBLISH_API_KEY');
  }
  if (c.NODE_ENV === 'production' && c.DEV_LOGIN === true) {
    throw new ConfigError('invalid configuration — DEV_LOGIN: cannot be on when NODE_ENV=production');
  }
  // Demo sign-in mints a token for anyone who asks: only where tokens prove nothing anyway (signed
  // with the public development secret) and the data is the embedded, throw-away kind.
  const devLoginBlocker = c.JWT_SECRET ? 'JWT_SECRET' : c.JWT_JWKS_URL ? 'JWT_JWKS_URL' : c.DATABASE_URL ? 'DATABASE_URL' : null;
  if (c.DEV_LOGIN === true && devLoginBlocker) {
    throw new ConfigError(
      `invalid configuration — DEV_LOGIN: cannot be on with ${devLoginBlocker} set (only in the embedded mode with the built-in development secret)`,
    );
  }
  return {
    env: c.NODE_ENV,
    port: c.PORT,
    host: c.HOST,
    nodeId: c.NODE_ID ?? `${hostname()}:${c.PORT}`,
    databaseUrl: c.DATABASE_URL,
    replicaUrls: c.DATABASE_REPLICA_URLS,
    poolSize: c.DATABASE_POOL_SIZE,
    dbWriteTimeoutMs: c.DB_WRITE_TIMEOUT_MS,
    dbStatementTimeoutMs: c.DB_STATEMENT_TIMEOUT_MS,
    dbLockTimeoutMs: c.DB_LOCK_TIMEOUT_MS,
    dbIdleInTransactionTimeoutMs: c.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    dbReplicaTimeoutMs: c.DB_REPLICA_TIMEOUT_MS,
    pgliteDir: c.PGLITE_DIR,
    redisUrl: c.REDIS_URL,
    redisClusterNodes: c.REDIS_CLUSTER_NODES.map((hp) => {
      const i = hp.lastIndexOf(':');
      return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
    }),
    redisKeyPrefix: c.REDIS_KEY_PREFIX,
    redisCommandTimeoutMs: c.REDIS_COMMAND_TIMEOUT_MS,
    presenceTtlMs: c.PRESENCE_TTL_MS,
    presenceMaxConnections: c.PRESENCE_MAX_CONNECTIONS,
    replicaMaxLagMs: c.REPLICA_MAX_LAG_MS,
    jwt: {
      secret: c.JWT_SECRET,
      jwksUrl: c.JWT_JWKS_URL,
      issuer: c.JWT_ISSUER,
      audience: c.JWT_AUDIENCE,
      algorithms: c.JWT_ALGORITHMS,
      clockToleranceS: c.JWT_CLOCK_TOLERANCE_S,
    },
    cookieName: c.AUTH_COOKIE_NAME,
    cookieSecure: c.COOKIE_SECURE,
    allowedOrigins: c.ALLOWED_ORIGINS,
    trustProxy: c.TRUST_PROXY,
    maxPayloadBytes: c.MAX_PAYLOAD_BYTES,
    maxHttpBufferSize,
    wsMaxBackpressureBytes: c.WS_MAX_BACKPRESSURE_BYTES,
    pingIntervalMs: c.PING_INTERVAL_MS,
    pingTimeoutMs: c.PING_TIMEOUT_MS,
    connectTimeoutMs: c.CONNECT_TIMEOUT_MS,
    maxSocketsPerUser: c.MAX_SOCKETS_PER_USER,
    maxRoomsPerSocket: c.MAX_ROOMS_PER_SOCKET,
    maxSocketsPerIp: c.MAX_SOCKETS_PER_IP,
    maxSessionsPerIp: c.MAX_SESSIONS_PER_IP ?? Math.min(1_000_000, 2 * c.MAX_SOCKETS_PER_IP),
    rateLimits: c.RATE_LIMITS,
    publishApiKey: c.PUBLISH_API_KEY,
    operatorApiKey: c.OPERATOR_API_KEY,
    operatorTimeoutMs: c.OPERATOR_TIMEOUT_MS,
    logLevel: c.LOG_LEVEL,
    shutdownGraceMs: c.SHUTDOWN_GRACE_MS,
    migrateOnStart: c.MIGRATE_ON_START ?? !c.DATABASE_URL,
    eventRetentionMonths: c.EVENT_RETENTION_MONTHS,
    readYourWritesMs: c.READ_YOUR_WRITES_MS,
    roomTailCheckMs: c.ROOM_TAIL_CHECK_MS,
    devLogin: c.DEV_LOGIN ?? (c.NODE_ENV !== 'production' && devLoginBlocker === null),
  };
}

/** Rows of README's configuration table, generated from the schema. */
export function configTableRows(): { name: string; type: string; default: string; description: string }[] {
  return Object.entries(configSchema.shape).map(([name, field]) => {
    const json = z.toJSONSchema(field as z.ZodType, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
    // Transformed fields (booleans, lists) lose their JSON-schema default: take the parsed one.
    const parsedDefault = (field as z.ZodType).safeParse(undefined);
    const fallback = parsedDefault.success ? parsedDefault.data : undefined;
    const def = json.default ?? (Array.isArray(fallback) ? fallback.join(',') || undefined : fallback);
    const type = Array.isArray(json.enum) ? (json.enum as string[]).join(' \\| ') : String(json.type ?? 'string');
    return { name, type, default: def === undefined ? '' : String(def), description: field.description ?? '' };
  });
}
