export interface BackoffOptions {
  /** Delay before the first retry, in ms. @default 250 */
  initialMs?: number;
  /** Upper bound of the delay, in ms. @default 10000 */
  maxMs?: number;
  /**
   * Fraction of the delay that is random, 0..1. A thousand dashboards that lost the same node must
   * not come back in the same millisecond (thundering herd). @default 0.5
   */
  jitter?: number;
}

/** Capped exponential backoff with jitter: attempt 0 → ≤ initialMs, doubling up to maxMs. */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = opts.initialMs ?? 250;
  const max = opts.maxMs ?? 10_000;
  const jitter = Math.min(1, Math.max(0, opts.jitter ?? 0.5));
  const capped = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(capped * (1 - jitter * random()));
}
