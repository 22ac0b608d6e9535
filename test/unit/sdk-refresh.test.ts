import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../server/limits/parse.js';
import { DEFAULT_REFRESH_LIMIT, minRefreshGapMs, refreshDelayMs } from '../../shared/sdk/refresh.js';

const S = 1000;

describe('token refresh schedule', () => {
  it("defaults to the server's own auth:refresh budget", () => {
    expect(DEFAULT_REFRESH_LIMIT).toEqual(DEFAULT_LIMITS['auth:refresh']);
  });

  it('refreshes a long-lived token a minute before expiry, a short one a quarter of its lifetime ahead', () => {
    const limit = DEFAULT_REFRESH_LIMIT;
    expect(refreshDelayMs(15 * 60 * S, Number.POSITIVE_INFINITY, limit)).toBe(14 * 60 * S);
    expect(refreshDelayMs(24 * 3600 * S, Number.POSITIVE_INFINITY, limit)).toBe(24 * 3600 * S - 60 * S);
    expect(refreshDelayMs(70 * S, Number.POSITIVE_INFINITY, limit)).toBe(52.5 * S);
    expect(refreshDelayMs(20 * S, Number.POSITIVE_INFINITY, limit)).toBe(15 * S);
    expect(refreshDelayMs(0, Number.POSITIVE_INFINITY, limit)).toBe(0);
    expect(refreshDelayMs(-5 * S, Number.POSITIVE_INFINITY, limit)).toBe(0);
  });

  // The old SDK refreshed on every server warning (a minute before exp): a 61–70 s token came back
  // with another warning 1–10 s later, so it refreshed every few seconds until rate-limited.
  it.each([
    [5, 60],
    [2, 60],
    [1, 1],
    [100, 1],
    [3, 6],
  ])('never refreshes more often than %i per %i s, whatever the lifetime', (points, durationS) => {
    const limit = { points, durationS };
    for (const ttlS of [1, 5, 10, 30, 61, 65, 70, 90, 300, 900, 86_400]) {
      // A client that refreshes whenever due, each refresh giving a token of the same lifetime.
      let now = 0;
      let last = Number.NEGATIVE_INFINITY;
      let exp = ttlS * S;
      const sent: number[] = [];
      while (now < 10 * durationS * S + 3 * ttlS * S && sent.length < 500) {
        now += refreshDelayMs(exp - now, now - last, limit);
        sent.push(now);
        last = now;
        exp = now + ttlS * S;
      }
      // In every window of durationS, at most `points` refreshes.
      for (let i = 0; i + points < sent.length; i++) {
        expect(sent[i + points]! - sent[i]!, `${ttlS} s tokens, ${points}/${durationS} s`).toBeGreaterThan(durationS * S);
      }
      // And while the budget allows it, each refresh lands before the token expires.
      if (minRefreshGapMs(limit) < 0.75 * ttlS * S) {
        for (let i = 1; i < sent.length; i++) expect(sent[i]! - sent[i - 1]!).toBeLessThan(ttlS * S);
      }
    }
  });

  it('waits at least a refused refresh’s retryAfterMs', () => {
    expect(refreshDelayMs(0, Number.POSITIVE_INFINITY, DEFAULT_REFRESH_LIMIT, 7_500)).toBe(7_500);
  });
});
