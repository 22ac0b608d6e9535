import { describe, expect, it } from 'vitest';
import {
  parseTransitionBody,
  socketRoom,
  tenantRoom,
  transitionPath,
  transitionRooms,
} from '../../loadtest/bench/servers/tutorial-requests.js';
import { compareWithBaseline, cpuParts, guaranteeCheck, lostAcked } from '../../loadtest/bench/write-path-compare.js';
import type { WritePathLevel } from '../../loadtest/bench/write-path-measure.js';

const latency = { count: 1, min: 1, mean: 1, p50: 1, p90: 1, p99: 1, p999: 1, max: 1 };

/** A level in which `node` served everything: `perS` transitions/s at `cpuUs` µs each, nothing lost unless said. */
function level(
  server: string,
  node: string,
  perS: number,
  cpuUs: number,
  lost: { log?: number; subscriber?: number } = {},
): WritePathLevel {
  const acked = perS * 10;
  return {
    server,
    nodes: 1,
    seconds: 10,
    committed: acked,
    committedPerS: perS,
    fannedOutPerS: perS - (lost.subscriber ?? 0) / 10,
    latencyMs: latency,
    statuses: { 200: acked },
    conflicts: 0,
    failures: 0,
    perNode: [{ node, requests: acked }],
    subscribers: [{ node, missing: lost.subscriber ?? 0, lagMs: latency }],
    persisted: { acked, ackedInLog: acked - (lost.log ?? 0), rows: acked },
    cpu: { usPerTransition: cpuUs, corePct: { [node]: 80, nginx: 5, redis: 3, postgres: 20 }, loadGeneratorPct: 15 },
  };
}

describe('write-path baseline: the guarantee check', () => {
  it('is met when every acked transition is in the log and at every subscriber', () => {
    expect(guaranteeCheck('tutorial-stack 1 node', level('tutorial-stack', 'tutorial-1', 500, 2000))).toMatchObject({
      met: true,
      actual: 'all 5,000',
    });
  });

  it('fails when one acked transition never reached a subscriber', () => {
    const l = level('tutorial-stack', 'tutorial-1', 500, 2000, { subscriber: 1 });
    expect(lostAcked(l)).toEqual({ notInLog: 0, notDelivered: 1 });
    expect(guaranteeCheck('tutorial-stack 1 node', l)).toMatchObject({ met: false, gap: '1 missing' });
  });

  it('fails when an acked transition is not in the log', () => {
    expect(guaranteeCheck('x', level('tutorial-stack', 'tutorial-1', 500, 2000, { log: 2 }))).toMatchObject({
      met: false,
      actual: '2 not in the log, 0 deliveries missing',
    });
  });

  it('fails when nothing was acked rather than passing for having lost nothing', () => {
    expect(guaranteeCheck('x', level('tutorial-stack', 'tutorial-1', 0, 0))).toMatchObject({ met: false, actual: 'nothing acked' });
  });
});

describe('write-path baseline: ratios to Fluxo', () => {
  it('divides transitions/s and CPU per transition and checks ≥ 4× and ≤ 0.25×', () => {
    const { comparison, targets } = compareWithBaseline(
      level('fluxo', 'node-1', 4000, 400),
      level('tutorial-stack', 'tutorial-1', 800, 2000),
      'tutorial-stack',
    );
    expect(comparison).toEqual({
      baseline: 'tutorial-stack',
      throughputRatio: 5,
      cpuRatio: 0.2,
      cpuParts: ['nginx', 'node', 'postgres', 'redis'],
    });
    expect(targets.map((t) => [t.target, t.actual, t.met])).toEqual([
      ['transitions/s ratio ≥ 4.00×', '5.00×', true],
      ['CPU per transition ratio ≤ 0.25×', '0.20×', true],
    ]);
  });

  it('counts a baseline that lost events only by what reached the subscribers', () => {
    const { comparison } = compareWithBaseline(
      level('fluxo', 'node-1', 1000, 400),
      level('tutorial-stack', 'tutorial-1', 1000, 800, { subscriber: 5000 }),
      'tutorial-stack',
    );
    expect(comparison.throughputRatio).toBe(2);
  });

  it('reports no ratio, not met, when the baseline delivered nothing', () => {
    const { comparison, targets } = compareWithBaseline(
      level('fluxo', 'node-1', 1000, 400),
      level('tutorial-stack', 'tutorial-1', 0, 0),
      'tutorial-stack',
    );
    expect([comparison.throughputRatio, comparison.cpuRatio]).toEqual([null, null]);
    expect(targets.every((t) => !t.met)).toBe(true);
  });

  it('refuses to compare CPU summed over different parts', () => {
    const baseline = level('tutorial-stack', 'tutorial-1', 800, 2000);
    const { postgres: _pg, ...withoutPostgres } = baseline.cpu.corePct;
    expect(cpuParts(baseline)).toEqual(['nginx', 'node', 'postgres', 'redis']);
    expect(() =>
      compareWithBaseline(
        level('fluxo', 'node-1', 4000, 400),
        { ...baseline, cpu: { ...baseline.cpu, corePct: withoutPostgres } },
        'tutorial-stack',
      ),
    ).toThrow('different parts');
  });
});

describe('tutorial-stack requests', () => {
  const id = '0b7c6f1e-2d4a-4e8b-9c1f-3a5d7e9b1c2d';

  it('routes only POST /api/processes/<uuid>/transition', () => {
    expect(transitionPath(`/api/processes/${id}/transition`)).toBe(id);
    expect(transitionPath(`/api/processes/${id.toUpperCase()}/transition?x=1`)).toBe(id);
    expect(transitionPath('/api/processes/42/transition')).toBeNull();
    expect(transitionPath(`/api/processes/${id}`)).toBeNull();
  });

  it('takes a target stage and an optional positive integer version', () => {
    expect(parseTransitionBody('{"to":"doing"}')).toEqual({ to: 'doing' });
    expect(parseTransitionBody('{"to":"doing","expectedVersion":3}')).toEqual({ to: 'doing', expectedVersion: 3 });
    for (const bad of [
      '',
      'null',
      '[]',
      '{}',
      '{"to":""}',
      '{"to":1}',
      '{"to":"a","expectedVersion":0}',
      '{"to":"a","expectedVersion":"2"}',
    ])
      expect(parseTransitionBody(bad)).toBeNull();
  });

  it("names rooms inside the token's tenant, the three a transition goes to among them", () => {
    const rooms = transitionRooms(id, id);
    expect(rooms).toEqual(['tenant', `workflow:${id}`, `process:${id}`]);
    // What the server emits to is what a subscriber asking for the same name joined.
    expect(rooms.map((r) => socketRoom('acme', r))).toEqual(rooms.map((r) => tenantRoom('acme', r)));
    expect(tenantRoom('acme', 'tenant')).toBe('acme');
    expect(tenantRoom('acme', `process:${id}`)).toBe(`acme:process:${id}`);
    expect(tenantRoom('acme', 'other-tenant')).toBeNull();
    expect(tenantRoom('acme', 'process:../x')).toBeNull();
  });
});
