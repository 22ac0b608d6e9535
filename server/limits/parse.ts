/** A budget: `points` per `durationS` seconds, per subject. */
export interface Limit {
  points: number;
  durationS: number;
}

/**
 * Built-in budgets. Each is per subject (`tenant:user`, or the IP for `handshake`) and
 * overridable with RATE_LIMITS.
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
} as const satisfies Record<string, Limit>;

export type LimitEvent = keyof typeof DEFAULT_LIMITS;
export const LIMIT_EVENTS = Object.keys(DEFAULT_LIMITS) as LimitEvent[];

export function isLimitEvent(value: string): value is LimitEvent {
  return Object.hasOwn(DEFAULT_LIMITS, value);
}

/**
 * Parses RATE_LIMITS (`event=points/seconds,…`, e.g. `process:transition=20/1,http:write=50/1`)
 * into overrides. An empty string gives no overrides. Throws an Error naming the bad entry, so a
 * typo fails start-up instead of silently keeping the default.
 */
export function parseRateLimits(spec: string): Partial<Record<LimitEvent, Limit>> {
  const out: Partial<Record<LimitEvent, Limit>> = {};
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (!entry) continue;
    const match = /^([A-Za-z:_-]+)\s*=\s*(\d+)\s*\/\s*(\d+)$/.exec(entry);
    if (!match) throw new Error(`RATE_LIMITS: "${entry}" is not of the form event=points/seconds`);
    const [, event, points, seconds] = match as unknown as [string, string, string, string];
    if (!isLimitEvent(event)) throw new Error(`RATE_LIMITS: "${entry}" names unknown event "${event}"; known: ${LIMIT_EVENTS.join(', ')}`);
    if (event in out) throw new Error(`RATE_LIMITS: "${entry}" sets "${event}" a second time`);
    const limit = { points: Number(points), durationS: Number(seconds) };
    if (limit.points < 1 || limit.points > 1_000_000) throw new Error(`RATE_LIMITS: "${entry}": points must be 1..1000000`);
    if (limit.durationS < 1 || limit.durationS > 86_400) throw new Error(`RATE_LIMITS: "${entry}": seconds must be 1..86400`);
    out[event] = limit;
  }
  return out;
}

/** Defaults with the overrides of `spec` applied. */
export function resolveLimits(spec: string): Record<LimitEvent, Limit> {
  return { ...DEFAULT_LIMITS, ...parseRateLimits(spec) };
}
