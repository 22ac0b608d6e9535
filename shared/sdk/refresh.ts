/** When to refresh a token: pure functions, unit-tested for any lifetime (test/unit/sdk-refresh.test.ts). */

/** A budget of `points` per `durationS` seconds (the server's `auth:refresh` budget in RATE_LIMITS). */
export interface RefreshLimit {
  points: number;
  durationS: number;
}

/** The server's default `auth:refresh` budget (server/limits/parse.ts), for a server that does not say. */
export const DEFAULT_REFRESH_LIMIT: RefreshLimit = { points: 5, durationS: 60 };

/** A refresh is due this long before expiry at most (the server warns with `auth:expiring` a minute ahead). */
export const REFRESH_LEAD_MS = 60_000;

/**
 * The least time between two `auth:refresh` of one client: the budget spread evenly, plus 10 %
 * (fixed windows, timers and the round trip must never bring two refreshes closer than that).
 */
export function minRefreshGapMs(limit: RefreshLimit): number {
  const points = Math.max(1, limit.points);
  return Math.ceil(((Math.max(1, limit.durationS) * 1000) / points) * 1.1);
}

/**
 * How long to wait before the next refresh. Due a quarter of the remaining lifetime before expiry,
 * at most a minute before it (15 min → at 14 min; 70 s → at 52.5 s; 8 s → at 6 s); never sooner than
 * `minRefreshGapMs` after the previous refresh, whatever the lifetime. A token shorter than that gap
 * therefore expires before it can be refreshed: the server disconnects with `token_expired` and the
 * client comes back with a fresh token from `getToken` (a handshake, which has its own budget).
 * @param remainingMs the token's remaining lifetime by the server's clock
 * @param sinceLastMs time since the previous `auth:refresh` was sent (Infinity if none)
 * @param notBeforeMs a floor, e.g. a refused refresh's `retryAfterMs`
 */
export function refreshDelayMs(remainingMs: number, sinceLastMs: number, limit: RefreshLimit, notBeforeMs = 0): number {
  const remaining = Math.max(0, remainingMs);
  const due = remaining - Math.min(REFRESH_LEAD_MS, remaining / 4);
  const gap = minRefreshGapMs(limit) - sinceLastMs;
  return Math.ceil(Math.max(0, due, gap, notBeforeMs));
}
