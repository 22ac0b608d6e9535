import { z } from 'zod';
import { parseRateLimits, RateLimitsError } from '../limits/parse.js';

const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off']).transform((v) => ['true', '1', 'yes', 'on'].includes(v));
/** An integer variable within [min, max], `def` when unset. */
const int = (min: number, max: number, def: number) => z.coerce.number().int().min(min).max(max).default(def);
const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

/**
 * Every environment variable Fluxo reads. `describe()` is the one-line description that README's
 * config table reproduces (a test checks the table against this schema).
 */
export const configSchema = z.object({
  NODE_ENV: z
    .enum(['development', 'production', 'test'])
    .default('development')
    .describe('`production` makes a missing JWT secret/JWKS a start-up error and turns DEV_LOGIN off.'),
  PORT: int(0, 65535, 8080).describe('TCP port of HTTP and Socket.IO (0 picks a free one).'),
  HOST: z.string().default('0.0.0.0').describe('Address to listen on.'),
  NODE_ID: z.string().min(1).max(64).optional().describe('Name of this node in logs, metrics and `hello`; defaults to host name + port.'),
  DATABASE_URL: z.string().url().optional().describe('Postgres primary (postgres.js). Unset: embedded PGlite.'),
  DATABASE_REPLICA_URLS: list.default([]).describe('Comma-separated streaming replicas for reads that may lag.'),
  DATABASE_POOL_SIZE: int(1, 200, 10).describe('Connections per Postgres pool.'),
  DB_WRITE_TIMEOUT_MS: int(100, 60_000, 2_000).describe(
    'A call on the Postgres primary (a write, waiting for its group commit included) not answered by then gets 503 `store_unavailable`. The write may still have been applied (its COMMIT was in flight: it then goes out to its rooms when it commits, and `db_late_commit_events_total` counts it), so retry with the same requestId.',
  ),
  DB_STATEMENT_TIMEOUT_MS: int(0, 3_600_000, 5_000).describe(
    'Postgres `statement_timeout` of every session (0: none); partition and key maintenance run without it.',
  ),
  DB_LOCK_TIMEOUT_MS: int(0, 600_000, 1_000).describe(
    'Postgres `lock_timeout` of every session (0: none): a write waiting longer for a row lock gets 503 `store_unavailable`.',
  ),
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: int(0, 3_600_000, 3_000).describe(
    'Postgres `idle_in_transaction_session_timeout` (0: none): the transaction of a node frozen mid-transaction is ended, releasing its locks (by the server, or by the other nodes if it froze mid-statement).',
  ),
  DB_REPLICA_TIMEOUT_MS: int(50, 60_000, 500).describe(
    'A replica read not answered by then is served by the primary, and the replica is skipped for a while.',
  ),
  PGLITE_DIR: z.string().optional().describe('Directory for embedded PGlite data; unset keeps it in memory.'),
  REDIS_URL: z
    .string()
    .url()
    .optional()
    .describe('Redis for fan-out, presence, revocation cache and shared rate limits. Unset: in-process.'),
  REDIS_CLUSTER_NODES: list
    .pipe(z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'host:port')))
    .default([])
    .describe('Comma-separated `host:port` of Redis Cluster masters; uses the sharded adapter (SSUBSCRIBE). Wins over REDIS_URL.'),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,32}$/)
    .default('fluxo')
    .describe('Prefix of every Redis key and channel Fluxo uses (several deployments can share one Redis).'),
  REDIS_COMMAND_TIMEOUT_MS: int(50, 60_000, 500).describe(
    'Every Redis command not answered by then fails (rate limits fall back to in-memory, presence to local); a Redis not answering PING within it makes /ready 503.',
  ),
  PRESENCE_TTL_MS: int(1000, 300_000, 15_000).describe(
    "With Redis: a node that stops heartbeating is declared dead and its presence removed (with `leave` diffs) within this time; it also leaves the operator API's node list by then.",
  ),
  PRESENCE_MAX_CONNECTIONS: int(0, 10_000_000, 1_000).describe(
    "A room of more connections than this (a user with two tabs counts twice) gets only its count of users in a `subscribe` ack (`presenceTruncated`) and no `presence` diffs while it stays over (one diff with `truncated: true` says it crossed): each subscriber reading the whole list and each change going to every member is quadratic in the room's size. 0 turns presence lists off.",
  ),
  REPLICA_MAX_LAG_MS: int(0, 600_000, 5_000).describe('A replica lagging more than this is skipped and its reads go to the primary.'),
  JWT_SECRET: z
    .string()
    .min(32, 'at least 32 characters')
    .optional()
    .describe('HS256 secret (dev, tests). Unset outside production: a built-in development secret.'),
  JWT_JWKS_URL: z.string().url().optional().describe('JWKS URL for RS256/ES256 tokens (production).'),
  JWT_ISSUER: z.string().optional().describe('Required `iss` claim, when set.'),
  JWT_AUDIENCE: z.string().optional().describe('Required `aud` claim, when set.'),
  JWT_ALGORITHMS: list
    .pipe(z.array(z.enum(['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'])).min(1))
    .optional()
    .describe('Allowed algorithms; default HS256 with JWT_SECRET, RS256,ES256 with JWT_JWKS_URL. Never `none`.'),
  JWT_CLOCK_TOLERANCE_S: int(0, 300, 5).describe('Seconds of clock skew tolerated on exp/nbf.'),
  AUTH_COOKIE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('fluxo_session')
    .describe('Name of the httpOnly session cookie.'),
  COOKIE_SECURE: bool.default(false).describe('Mark the session cookie Secure (set true behind HTTPS).'),
  ALLOWED_ORIGINS: list
    .default([])
    .describe(
      'Origins whose pages may use the session cookie and read the HTTP API and Socket.IO long-polling through CORS (exact match, with credentials), e.g. `https://app.example.com`. The page served by the node itself is always allowed.',
    ),
  TRUST_PROXY: list
    .default(['127.0.0.1', '::1', '::ffff:127.0.0.1'])
    .describe('Peer addresses whose X-Forwarded-For/X-Real-IP are believed.'),
  MAX_PAYLOAD_BYTES: int(1024, 16 * 1024 * 1024, 64 * 1024).describe('Largest HTTP body or socket message accepted.'),
  MAX_HTTP_BUFFER_SIZE: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .optional()
    .describe(
      'Hard cap of one Engine.IO message: a WebSocket frame or a long-polling POST body (Socket.IO `maxHttpBufferSize`); at least MAX_PAYLOAD_BYTES. Default 4 × MAX_PAYLOAD_BYTES: a message a little over MAX_PAYLOAD_BYTES still gets a typed `payload_too_large` ack and a polling POST can carry a few messages, while one frame never makes the node buffer more. Over it a WebSocket is closed at once (1006, no close frame) and a polling POST gets 413.',
    ),
  WS_MAX_BACKPRESSURE_BYTES: int(64 * 1024, 256 * 1024 * 1024, 1024 * 1024).describe(
    'Bytes a node queues for one WebSocket that does not read what it is sent (a stalled link, a frozen tab), past what the kernel\'s buffers hold, or for a long-polling session between two polls. One more message and the socket is cut (`ws_limit_refusals_total{limit="max_backpressure"}`), never sent a stream with a hole in it: the client reconnects and resumes from its offsets (the SDK does). 1 MiB (Centrifugo\'s client queue): a burst of events or a replay page fits; a socket that stays behind by more cannot keep up with its rooms anyway.',
  ),
  PING_INTERVAL_MS: int(100, 600_000, 25_000).describe(
    "Engine.IO heartbeat period. 25 s (Socket.IO's default) keeps an idle socket under the 60 s idle timeout of common proxies and load balancers.",
  ),
  PING_TIMEOUT_MS: int(100, 600_000, 20_000).describe(
    "A client that has not answered a ping by then is dropped. 20 s (Socket.IO's default) tolerates a slow mobile link; a dead peer is noticed within PING_INTERVAL_MS + this (45 s), which frees its presence and its per-user and per-IP slots.",
  ),
  CONNECT_TIMEOUT_MS: int(100, 600_000, 10_000).describe(
    "An Engine.IO session that has not completed a Socket.IO CONNECT by then is closed. 10 s instead of Socket.IO's 45 s: a client sends CONNECT as soon as it has its token, and a session that never connects holds one of its IP's MAX_SESSIONS_PER_IP slots.",
  ),
  MAX_SOCKETS_PER_USER: int(1, 1_000_000, 50).describe(
    'Live sockets of one user (tenant + user id) on this node; one more is refused with connect_error `rate_limited`. 50: each tab or device holds one, and a network blip briefly doubles them until the old ones time out.',
  ),
  MAX_SOCKETS_PER_IP: int(1, 1_000_000, 500).describe(
    'Live sockets from one client IP on this node, refused like MAX_SOCKETS_PER_USER. 500: an office or a carrier-grade NAT puts hundreds of users behind one address.',
  ),
  MAX_ROOMS_PER_SOCKET: int(1, 100_000, 256).describe(
    "Rooms one socket may be in at once; one more `subscribe` is answered `too_many_rooms` (subscribing again to a room it is in does not count). 256: a dashboard needs a few, and each room a socket is in holds memory on its node and its presence in Redis, so a socket subscribing to every process of its tenant must not grow them without bound (Centrifugo's channel limit is 128).",
  ),
  MAX_SESSIONS_PER_IP: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .optional()
    .describe(
      'Live Engine.IO sessions (connected or not) from one client IP on this node; one more handshake is answered HTTP 429 `rate_limited`. Default 2 × MAX_SOCKETS_PER_IP: room for sessions not yet connected (see CONNECT_TIMEOUT_MS), so a client that connects meets the typed socket cap first.',
    ),
  RATE_LIMITS: z
    .string()
    // Parsed here, with every other variable: a typo is a configuration error (exit 78) before the
    // node opens its database or Redis, not a failure after.
    .superRefine((spec, ctx) => {
      try {
        parseRateLimits(spec);
      } catch (err) {
        if (!(err instanceof RateLimitsError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message });
      }
    })
    .default('')
    .describe('Overrides as `event=points/seconds,…`, e.g. `process:transition=20/1,http:write=50/1`.'),
  PUBLISH_API_KEY: z.string().min(16).optional().describe('Bearer key for POST /api/publish; unset disables the endpoint.'),
  OPERATOR_API_KEY: z
    .string()
    .min(32, 'at least 32 characters')
    // What a Bearer credential may hold (RFC 6750 b64token): any other character could never match.
    .regex(/^[A-Za-z0-9\-._~+/]+=*$/, 'letters, digits and - . _ ~ + / (then = padding) only')
    .optional()
    .describe(
      'Bearer key of the operator API (/api/admin: presence, rooms, connections, disconnect, unsubscribe, nodes) for every tenant; must differ from PUBLISH_API_KEY. Unset: only tokens with role `admin` use it, each for its own tenant.',
    ),
  OPERATOR_TIMEOUT_MS: int(100, 60_000, 2_000).describe(
    'How long an operator API call waits for the other nodes to answer; a node that has not answered by then is listed in `missing` (a dead node leaves the list within PRESENCE_TTL_MS).',
  ),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level.'),
  SHUTDOWN_GRACE_MS: int(0, 600_000, 10_000).describe('Time allowed to drain on SIGTERM before exiting.'),
  MIGRATE_ON_START: bool.optional().describe('Apply migrations at start; default on for embedded PGlite, off with DATABASE_URL.'),
  EVENT_RETENTION_MONTHS: int(0, 1200, 0).describe('Drop event-log partitions older than this many months (0 keeps all).'),
  READ_YOUR_WRITES_MS: int(0, 60_000, 5_000).describe("After a write, route that user's reads to the primary for this long."),
  ROOM_TAIL_CHECK_MS: int(0, 3_600_000, 5_000).describe(
    "With several nodes (REDIS_URL), how often each node reads the heads of its sockets' rooms from the log and sends them what was committed and never sent — events whose node died between its COMMIT and its publish: the last events of a room have no next one to show the gap. A room is repaired when it was behind at two checks in a row (within 2 × this); 0 turns the check off.",
  ),
  DEV_LOGIN: bool
    .optional()
    .describe(
      'Demo sign-in on the page (anyone may mint a token for a demo user). Default on only in the embedded mode with the built-in development secret; refused with JWT_SECRET, JWT_JWKS_URL, DATABASE_URL or in production.',
    ),
});

export type RawConfig = z.infer<typeof configSchema>;
