import { describe, expect, it } from 'vitest';
import { type CrossMeasurement, checkTargets } from '../../loadtest/bench/cross-node.js';
import { fanoutOptions } from '../../loadtest/bench/flags.js';
import { cpuPerDelivery, maxThenRate, RateOfRound, type Window } from '../../loadtest/bench/measure.js';
import type { Worker } from '../../loadtest/clients.js';
import { publishLoop } from '../../loadtest/publish-loop.js';
import { encodeHistogram, newHistogram } from '../../loadtest/stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('bench publish loop', () => {
  it('fires at the offered rate', async () => {
    let n = 0;
    const loop = publishLoop({ publish: async () => void n++, offered: 200, lanes: 4 });
    await sleep(500);
    await loop.stop();
    // 200/s for 0.5 s, with timer slack on a busy machine.
    expect(n).toBeGreaterThanOrEqual(70);
    expect(n).toBeLessThanOrEqual(130);
  });

  it('flat out, publishes only while the backlog allows it and counts failed publishes', async () => {
    let n = 0;
    let open = false;
    const loop = publishLoop({
      // A real publish is a request: it yields to timers (an instant one would spin the loop forever).
      publish: async () => {
        await sleep(1);
        n++;
        if (n % 2) throw new Error('refused');
      },
      offered: 0,
      lanes: 2,
      mayPublish: () => open,
    });
    await sleep(50);
    expect(n).toBe(0);
    open = true;
    await sleep(50);
    await loop.stop();
    expect(n).toBeGreaterThan(10);
    expect(loop.errors()).toBe(Math.ceil(n / 2));
  });
});

describe('bench CPU per delivery', () => {
  it('sums the named probes only', () => {
    const w = { delivered: 1000, cpuUs: { 'node A': 500, 'node B': 700, redis: 100, postgres: 900 } } as unknown as Window;
    expect(cpuPerDelivery(w, ['node A', 'node B', 'redis'])).toBe(1.3);
    expect(cpuPerDelivery(w)).toBe(2.2);
    expect(cpuPerDelivery({ ...w, delivered: 0 })).toBeNull();
  });
});

describe('the fixed rate of a round', () => {
  const max = (deliveriesPerS: number) => ({ deliveriesPerS }) as Window;

  it('is half of what the reference engine delivered flat out in that round, in events/s', () => {
    const rates = new RateOfRound(100, undefined);
    expect(rates.rate('1', true)(max(60_000))).toBe(300);
    expect(rates.rate('1', false)(max(10_000))).toBe(300);
    // Another round (or another kind of Redis) has its own reference; without one, half of the engine's own max.
    expect(rates.rate('2', false)(max(10_000))).toBe(50);
  });

  it('is --rate when given', () => {
    const rates = new RateOfRound(100, 42);
    expect(rates.rate('1', true)(max(60_000))).toBe(42);
    expect(rates.rate('1', false)(max(10_000))).toBe(42);
  });

  it('runs the reference engines first, the others in their order', () => {
    expect(new RateOfRound(100, undefined).order(['a', 'bare', 'b', 'bare-sharded'], (id) => id.startsWith('bare'))).toEqual([
      'bare',
      'bare-sharded',
      'a',
      'b',
    ]);
  });
});

describe('cross-node targets', () => {
  const m = (engine: CrossMeasurement['engine'], cpu: number, p99: number, phase: 'max' | 'rate' = 'max'): CrossMeasurement => ({
    engine,
    round: 0,
    phase,
    offeredPerS: phase === 'rate' ? 300 : null,
    deliveriesPerS: 1,
    eventsPerS: 1,
    publishesPerEvent: engine.startsWith('fluxo-sharded') ? 1.004 : 0.5,
    cpuUsPerDelivery: cpu,
    nodeAUs: null,
    nodeBUs: null,
    redisUs: null,
    serverCpuPct: 0,
    postgresUs: null,
    postgresCpuPct: null,
    p50Ms: 1,
    p99Ms: p99,
    publishErrors: 0,
    lost: 0,
  });
  const medians = [
    m('socketio-uws', 0.9, 900),
    m('socketio-uws', 6, 20, 'rate'),
    m('fluxo', 1.1, 900),
    m('fluxo', 7, 30, 'rate'),
    m('socketio-uws-sharded', 0.9, 900),
    m('socketio-uws-sharded', 6, 40, 'rate'),
    m('fluxo-sharded', 1.3, 900),
    m('fluxo-sharded', 7, 44, 'rate'),
  ];

  it('checks every Fluxo engine: 1.2 µs flat out, one adapter message per event, p99 at the fixed rate against bare on the same Redis', () => {
    const checks = checkTargets(medians, 1000);
    expect(checks.map((c) => [c.subject.split(',')[0], c.target.split(' ').slice(0, 2).join(' '), c.actual, c.met])).toEqual([
      ['fluxo', 'server CPU', '1.1 µs', true],
      ['fluxo', 'adapter messages', '0.5', true],
      ['fluxo', 'p99 vs', '1.50×', false],
      ['fluxo-sharded', 'server CPU', '1.3 µs', false],
      // The heartbeats' few PUBLISH a second are below the figure's two decimals.
      ['fluxo-sharded', 'adapter messages', '1', true],
      ['fluxo-sharded', 'p99 vs', '1.10×', true],
    ]);
    expect(checks[2]!.target).toBe("p99 vs bare's, both at half its max (300 events/s) ≤ 1.20×");
    expect(checks[2]!.gap).toBe('25 % over');
  });

  it('checks no p99 when --rate replaced half of bare max', () => {
    expect(checkTargets(medians, 1000, true).filter((c) => c.target.startsWith('p99'))).toEqual([]);
  });
});

describe('a fan-out measurement that missed a delivery', () => {
  /** One client process holding every subscriber, which receives each published event `copies(n)` times (n = its index). */
  function fakeWorker(subscribers: number, copies: (n: number) => number) {
    const w = {
      child: { connected: true, send: () => {} },
      received: 0,
      duplicates: 0,
      next: async () => ({
        type: 'mark',
        received: w.received,
        duplicates: w.duplicates,
        dropped: 0,
        lost: 0,
        hist: encodeHistogram(newHistogram()),
        named: {},
      }),
    };
    let n = 0;
    const publish = async (count: number) => {
      for (let i = 0; i < count; i++, n++) {
        w.received += copies(n) * subscribers;
        w.duplicates += Math.max(0, copies(n) - 1) * subscribers;
      }
      await sleep(1);
    };
    return { workers: [w as unknown as Worker], publish };
  }
  const o = { ...fanoutOptions([], true, { all: ['x'] }), subscribers: 10, windowS: 0.05, batch: 1, rate: 200 };
  const run = (publish: (count: number) => Promise<void>) => ({
    who: 'x',
    publish,
    backlogEvents: 5,
    cpu: {},
    rate: () => 200,
    settleMs: 200,
  });

  it('passes when every event reached every subscriber once', async () => {
    const { workers, publish } = fakeWorker(10, () => 1);
    expect((await maxThenRate(workers, o, run(publish))).map(([phase, w]) => [phase, w.settled])).toEqual([
      ['max', { missing: 0, duplicates: 0 }],
      ['rate', { missing: 0, duplicates: 0 }],
    ]);
  });

  it('fails loudly on a missing delivery and on a duplicated one', async () => {
    const missing = fakeWorker(10, (n) => (n === 3 ? 0 : 1));
    await expect(maxThenRate(missing.workers, o, run(missing.publish))).rejects.toThrow('x after max: 10 deliveries missing, 0 duplicated');
    const twice = fakeWorker(10, (n) => (n === 3 ? 2 : 1));
    await expect(maxThenRate(twice.workers, o, run(twice.publish))).rejects.toThrow('x after max: 0 deliveries missing, 10 duplicated');
  });
});
