import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
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

export function summarize(h: hdr.Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
  return {
    count: h.totalCount,
    min: ms(h.minNonZeroValue),
    mean: ms(h.mean),
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  };
}

/** `--import` value that lets a forked child run TypeScript, wherever the caller runs from. */
export function tsxImport(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
}

/** Wall clock in fractional milliseconds (comparable to an event's ISO `at` on the same machine). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
