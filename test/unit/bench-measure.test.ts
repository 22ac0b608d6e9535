import { describe, expect, it } from 'vitest';
import { type CrossMeasurement, checkTargets } from '../../loadtest/bench/cross-node.js';
import { cpuPerDelivery, type Window } from '../../loadtest/bench/measure.js';
import { publishLoop } from '../../loadtest/publish-loop.js';

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

describe('cross-node targets', () => {
  const m = (engine: CrossMeasurement['engine'], cpu: number, p99: number): CrossMeasurement => ({
    engine,
    round: 0,
    phase: 'max',
    deliveriesPerS: 1,
    eventsPerS: 1,
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

  it('checks every Fluxo engine flat out against 1.5 µs and 35 ms, not the baselines', () => {
    const checks = checkTargets([m('fluxo', 1.2, 40), m('socketio-uws', 9, 900), m('fluxo-sharded', 2, 10)], 1000);
    expect(checks.map((c) => [c.subject.split(',')[0], c.met])).toEqual([
      ['fluxo', true],
      ['fluxo', false],
      ['fluxo-sharded', false],
      ['fluxo-sharded', true],
    ]);
    expect(checks[1]!.gap).toBe('14 % over');
  });
});
