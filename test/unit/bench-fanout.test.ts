import { describe, expect, it } from 'vitest';
import { checkTargets, type Measurement, pgliteNote } from '../../loadtest/bench/fanout.js';

const m = (
  engine: Measurement['engine'],
  phase: 'max' | 'rate',
  cpu: number,
  p99: number,
  postgresUs: number | null = null,
): Measurement => ({
  engine,
  round: 0,
  phase,
  offeredPerS: phase === 'rate' ? 250 : null,
  deliveriesPerS: 500_000,
  cpuUsPerDelivery: cpu,
  postgresUs,
  serverCpuPct: 50,
  p50Ms: 1,
  p99Ms: p99,
  publishErrors: 0,
  lost: 0,
});

const medians = [
  m('socketio-uws', 'max', 1, 90),
  m('socketio-uws', 'rate', 6, 20),
  m('fluxo-postgres', 'max', 1.2, 95, 0.3),
  m('fluxo-postgres', 'rate', 7, 26, 1),
  m('fluxo', 'max', 2.5, 70),
  m('fluxo', 'rate', 8, 30),
];

describe('fan-out targets, one node', () => {
  it('checks the full path on Postgres: node CPU against bare Socket.IO-on-uWS (Postgres beside it), p99 at half its max', () => {
    const checks = checkTargets(medians);
    expect(checks.map((c) => [c.subject, c.target, c.actual, c.met])).toEqual([
      ['fluxo-postgres', 'CPU/delivery (node) vs Socket.IO-on-uWS ≤ 1.30×', '1.20× (node + Postgres: 1.50×)', true],
      ['fluxo-postgres', "p99 vs Socket.IO-on-uWS's, both at half its max (250 events/s) ≤ 1.20×", '1.30×', false],
    ]);
  });

  it('checks no p99 when --rate replaced half of bare max', () => {
    expect(checkTargets(medians, true).map((c) => c.target.split(' ')[0])).toEqual(['CPU/delivery']);
  });

  it('reports PGlite apart from the targets', () => {
    expect(checkTargets(medians).some((c) => c.subject === 'fluxo')).toBe(false);
    expect(pgliteNote(medians)).toBe(
      "fluxo on embedded PGlite (the development store), apart from the targets: 2.5 µs CPU/delivery = 2.50× Socket.IO-on-uWS; p99 at the fixed rate 30 ms = 1.50× Socket.IO-on-uWS's",
    );
    expect(pgliteNote(medians.filter((x) => x.engine !== 'fluxo'))).toBeNull();
  });
});
