/** A budget: `points` per `durationS` seconds, per subject. */
export interface Limit {
  points: number;
  durationS: number;
}

/**
 * Built-in budgets. Each is per subject (`tenant:user`; the IP for `handshake`, `session` and
 * `auth`; the socket for `events`) and overridable with RATE_LIMITS.
 */
export const DEFAULT_LIMITS = {
  /** Transitions write to the event log and fan out to every watcher; a human clicks far slower. */
  'process:transition': { points: 20, durationS: 1 },
  /** Cursor/typing updates are relayed to the whole room; 10/s is smooth enough for UI. */
  'presence:update': { points: 10, durationS: 1 },
  /** Each subscribe may load a snapshot from the database. */
  subscribe: { points: 50, durationS: 10 },
  'http:write': { points: 30, durationS: 1 },
  'http:read': { points: 100, durationS: 1 },
  /** Server-to-server publishing with PUBLISH_API_KEY. */
  publish: { points: 1000, durationS: 1 },
  /** Per IP: every handshake verifies a JWT and may hit the revocation store. */
  handshake: { points: 30, durationS: 10 },
  /** Per user: refresh mints tokens; slow on purpose. */
  'auth:refresh': { points: 5, durationS: 60 },
  /**
   * Per socket, in memory: every client event, known or not, valid or not, with or without an ack,
   * before anything else is done with it. Unless set, the sum of the points of the socket events'
   * own budgets, per second (see `resolveLimits`): a client within each event's budget never meets
   * it, while unknown events, invalid payloads and ack-less packets are counted too.
   */
  events: { points: 85, durationS: 1 },
  /**
   * Per IP, in memory on each node: Engine.IO handshakes (sessions opened, before any CONNECT).
   * Unless set, twice `handshake` (see `resolveLimits`), so a client over its CONNECT budget meets
   * that typed refusal first; this one stops sessions that never send a CONNECT.
   */
  session: { points: 60, durationS: 10 },
  /**
   * Per IP, in memory on each node: HTTP requests not yet authenticated — every /auth/* route (sign-in, demo sign-in,
   * logout), and every /api request before its token is verified; a token that verifies gets its
   * point back, so only failures (no token, forged, expired, revoked) and sign-ins spend it.
   */
  auth: { points: 120, durationS: 60 },
} as const satisfies Record<string, Limit>;

export type LimitEvent = keyof typeof DEFAULT_LIMITS;

/**
 * Budgets counted in memory on each node, never in Redis: they are spent before any work, on every
 * packet (`events`), Engine.IO handshake (`session`) or API request (`auth`, given back when the
 * token verifies), so a Redis round trip each — or a wait on a silent Redis — would cost more than
 * what they guard. Behind nginx's `ip_hash` a client IP's requests land on one node anyway.
 */
export const NODE_LOCAL_LIMITS: ReadonlySet<LimitEvent> = new Set(['events', 'session', 'auth']);
export const LIMIT_EVENTS = Object.keys(DEFAULT_LIMITS) as LimitEvent[];

export function isLimitEvent(value: string): value is LimitEvent {
  return Object.hasOwn(DEFAULT_LIMITS, value);
}

/** A RATE_LIMITS entry that cannot be used; the message names the entry (and says nothing of the variable: callers add it). */
export class RateLimitsError extends Error {
  override name = 'RateLimitsError';
}

/**
 * Parses RATE_LIMITS (`event=points/seconds,…`, e.g. `process:transition=20/1,http:write=50/1`)
 * into overrides. An empty string gives no overrides. Throws a RateLimitsError naming the bad entry,
 * so a typo fails start-up instead of silently keeping the default (the config schema parses it
 * before anything starts: exit 78 like any other bad variable).
 */
export function parseRateLimits(spec: string): Partial<Record<LimitEvent, Limit>> {
  const out: Partial<Record<LimitEvent, Limit>> = {};
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (!entry) continue;
    const match = /^([A-Za-z:_-]+)\s*=\s*(\d+)\s*\/\s*(\d+)$/.exec(entry);
    if (!match) throw new RateLimitsError(`"${entry}" is not of the form event=points/seconds`);
    const [, event, points, seconds] = match as unknown as [string, string, string, string];
    if (!isLimitEvent(event)) throw new RateLimitsError(`"${entry}" names unknown event "${event}"; known: ${LIMIT_EVENTS.join(', ')}`);
    if (event in out) throw new RateLimitsError(`"${entry}" sets "${event}" a second time`);
    const limit = { points: Number(points), durationS: Number(seconds) };
    if (limit.points < 1 || limit.points > 1_000_000) throw new RateLimitsError(`"${entry}": points must be 1..1000000`);
    if (limit.durationS < 1 || limit.durationS > 86_400) throw new RateLimitsError(`"${entry}": seconds must be 1..86400`);
    out[event] = limit;
  }
  return out;
}

/** The client events of a socket that have a budget of their own (`unsubscribe` draws on `subscribe`'s). */
const SOCKET_EVENTS = ['process:transition', 'presence:update', 'subscribe', 'auth:refresh'] as const satisfies LimitEvent[];

/**
 * Defaults with the overrides of `spec` applied. Two budgets follow others unless set themselves:
 * `events` is the sum of the socket events' points per second, and `session` twice `handshake` (so
 * raising those, as load tests do, raises these too).
 */
export function resolveLimits(spec: string): Record<LimitEvent, Limit> {
  const overrides = parseRateLimits(spec);
  const limits: Record<LimitEvent, Limit> = { ...DEFAULT_LIMITS, ...overrides };
  if (!overrides.events) limits.events = { points: SOCKET_EVENTS.reduce((sum, e) => sum + limits[e].points, 0), durationS: 1 };
  if (!overrides.session) limits.session = { points: 2 * limits.handshake.points, durationS: limits.handshake.durationS };
  return limits;
}
