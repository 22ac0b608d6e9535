import { describe, expect, it } from 'vitest';
import { type FanoutResult, fanoutThresholds, formatFanout } from '../../loadtest/fanout.js';
import { fanoutHtml, niceTicks } from '../../loadtest/report-html.js';
import { newHistogram, recordUs, summarize } from '../../loadtest/stats.js';

describe('latency summaries', () => {
  it('never put a percentile above max (HdrHistogram answers with the top of the bucket)', () => {
    const h = newHistogram();
    for (let i = 0; i < 999; i++) recordUs(h, 1000 + i);
    recordUs(h, 73_201);
    const s = summarize(h);
    expect(s.max).toBe(73.201);
    expect(s.p999).toBeLessThanOrEqual(s.max);
    expect([s.min, s.p50, s.p90, s.p99, s.p999, s.max]).toEqual([...[s.min, s.p50, s.p90, s.p99, s.p999, s.max]].sort((a, b) => a - b));
    // To the µs, not whole milliseconds.
    expect(s.p50).toBeCloseTo(1.5, 2);
  });

  it('keeps sub-millisecond latencies', () => {
    const h = newHistogram();
    for (const us of [120, 180, 250, 410]) recordUs(h, us);
    expect(summarize(h)).toMatchObject({ min: 0.12, p50: 0.18, max: 0.41 });
  });
});

describe('axis ticks', () => {
  it.each([
    [45.7, [0, 20, 40, 60]],
    [31, [0, 10, 20, 30, 40]],
    [6.5, [0, 2, 4, 6, 8]],
    [0.37, [0, 0.1, 0.2, 0.3, 0.4]],
    [100, [0, 25, 50, 75, 100]],
    [523_000, [0, 200_000, 400_000, 600_000]],
    [0, [0, 1]],
  ])('niceTicks(%s) = %j', (max, ticks) => {
    expect(niceTicks(max)).toEqual(ticks);
  });
});

const LAT = { count: 3, min: 1.2, mean: 10.5, p50: 9.5, p90: 20.25, p99: 31.125, p999: 40.5, max: 45.75 };

function result(over: Partial<FanoutResult> = {}): FanoutResult {
  const r: FanoutResult = {
    tool: { name: 'fluxo-loadtest', version: '0.1.0', commit: '0123456789abcdef0123456789abcdef01234567', engine: null, node: 'v20.0.0' },
    target: { url: 'http://127.0.0.1:8080', node: 'node-a' },
    startedAt: '2026-11-30T10:00:00.000Z',
    finishedAt: '2026-11-30T10:00:07.500Z',
    scenario: 'fanout',
    options: {
      url: 'http://127.0.0.1:8080',
      subscribers: 100,
      rooms: 2,
      publishers: 2,
      mode: 'publish',
      events: 1000,
      rate: 0,
      payloadBytes: 100,
      processes: 2,
      sourceAddresses: 0,
      connectRate: 500,
      maxP99Ms: 25,
    },
    connect: { attempted: 100, connected: 100, failed: 0, errors: {}, timeMs: LAT },
    published: 998,
    publishErrors: { 'HTTP 503 not_ready': 2 },
    publishedPerS: 143,
    expectedDeliveries: 49_900,
    delivered: 49_900,
    deliveredPerS: 7128,
    durationS: 7,
    latencyMs: LAT,
    percentiles: [
      [50, 9.5],
      [90, 20.25],
      [99, 31.125],
      [99.9, 40.5],
      [99.99, 45.75],
      [100, 45.75],
    ],
    duplicates: 0,
    unexpected: 0,
    disconnects: 0,
    missingTotal: 0,
    missing: [],
    series: [
      { t: 1, deliveredPerS: 6000, p50: 9, p99: 29.5, max: 33 },
      { t: 2, deliveredPerS: 7321, p50: 9.7, p99: 31, max: 45.75 },
      { t: 3.4, deliveredPerS: 6900, p50: 9.1, p99: 30, max: 40 },
    ],
    thresholds: [],
    ...over,
  };
  r.thresholds = fanoutThresholds(r);
  return r;
}

describe('fan-out report', () => {
  it('checks its thresholds: publish errors and a p99 above --max-p99 are not met', () => {
    const t = result().thresholds;
    expect(t.filter((x) => !x.ok).map((x) => `${x.name} ${x.condition}: ${x.actual}`)).toEqual([
      'publish errors = 0: HTTP 503 not_ready × 2',
      'latency p99 ≤ 25 ms: 31.125 ms',
    ]);
    expect(result({ publishErrors: {}, options: { ...result().options, maxP99Ms: 50 } }).thresholds.every((x) => x.ok)).toBe(true);
  });

  it('HTML: run date, configuration, thresholds met or not, errors in words, round axis ticks', () => {
    const html = fanoutHtml(result());
    expect(html).toContain('<time datetime="2026-11-30T10:00:00.000Z">');
    expect(html).toContain('Thresholds NOT met');
    expect(html).toMatch(/✗ NOT MET<\/td><td>publish errors = 0<\/td><td>HTTP 503 not_ready × 2/);
    expect(html).toMatch(/✓ met<\/td><td>missing deliveries = 0/);
    for (const row of ['Subscribers / rooms', 'Offered rate', 'Payload padding', 'Connect rate', 'fluxo-loadtest 0.1.0 (0123456789ab)'])
      expect(html).toContain(row);
    expect(html).not.toMatch(/\{\}|\{&#34;/);
    expect(html).toContain('<td>Connect errors</td><td>none</td>');
    // Every numeric tick label of every chart is a round number: 0, 10, 20 … — not 11.4, 22.9 …
    const labels = [...html.matchAll(/text-anchor="(?:end|middle)">([\d.]+k?)<\/text>/g)].map((m) => m[1]!);
    expect(labels.length).toBeGreaterThan(10);
    for (const l of labels) expect(l).toMatch(/^(0|[1-9]0*|[1-9]\.?5?0*|2\.5|25|250|[1-9]0*k|0\.[1-9]5?)$/);
    expect(labels).toEqual(expect.arrayContaining(['0', '10', '20', '30', '40', '60', '2000', '4000', '6000', '8000']));
    expect(fanoutHtml(result({ publishErrors: {}, options: { ...result().options, maxP99Ms: 50 } }))).toContain('Thresholds met');
  });

  it('text summary: errors in words, p99.9, run date and the thresholds', () => {
    const text = formatFanout(result());
    expect(text).toContain('errors HTTP 503 not_ready × 2');
    expect(text).toContain('p99.9 40.5 ms');
    expect(text).toContain('2026-11-30T10:00:00.000Z → 2026-11-30T10:00:07.500Z');
    expect(text).toContain('thresholds   NOT met');
    expect(text).not.toContain('{}');
  });
});
