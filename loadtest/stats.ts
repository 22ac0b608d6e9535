import * as hdr from 'hdr-histogram-js';

/** Latencies are recorded in microseconds, up to an hour. */
export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

export function recordUs(h: hdr.Histogram, us: number): void {
  h.recordValue(Math.min(3_600_000_000, Math.max(1, Math.round(us))));
}

export const encodeHistogram = (h: hdr.Histogram): string => hdr.encodeIntoCompressedBase64(h);
export const decodeHistogram = (s: string): hdr.Histogram => hdr.decodeFromCompressedBase64(s);

export interface LatencySummary {
  count: number;
  /** Milliseconds. */
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

const ms = (us: number) => Math.round(us) / 1000;

/**
 * The value at a percentile, in µs. HdrHistogram answers with the highest value of the percentile's
 * bucket, which can exceed the largest value recorded (a p99.9 above max): never more than the max.
 */
export function percentileUs(h: hdr.Histogram, p: number): number {
  return Math.min(h.getValueAtPercentile(p), h.maxValue);
}

/** Count, then min/mean/p50/p90/p99/p99.9/max in ms to the µs (3 significant digits), p50 ≤ … ≤ max. */
export function summarize(h: hdr.Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  return {
    count: h.totalCount,
    min: ms(h.minNonZeroValue),
    mean: ms(h.mean),
    p50: ms(percentileUs(h, 50)),
    p90: ms(percentileUs(h, 90)),
    p99: ms(percentileUs(h, 99)),
    p999: ms(percentileUs(h, 99.9)),
    max: ms(h.maxValue),
  };
}

/** Wall clock in fractional milliseconds (comparable to an event's ISO `at` on the same machine). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
