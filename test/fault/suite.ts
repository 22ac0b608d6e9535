/**
 * The fault tier's one test body, shared by its two files (faults-nodes.test.ts and
 * faults-backends.test.ts, split so that the fault project runs two clusters at a time).
 * The delivery guarantee under faults, on real processes: 3 Fluxo nodes behind nginx (ip_hash),
 * redis-server (the cluster-* scenarios: a 3-master Redis Cluster, sharded adapter), a durable
 * Postgres 15 primary (fsync, synchronous_commit on) and a streaming replica; 6 writers from
 * different source addresses (~60 writes/s through nginx) and 20 SDK readers (16 subscribed before
 * the writes, 4 while the fault is on), who must have every event of their rooms in the log, acked
 * or not, before the closing barrier is published. Each scenario runs on a fresh cluster; see
 * engine.ts for the timeline and check.ts for what is counted. `npm run chaos` runs the same
 * scenarios for longer.
 */
import { describe, expect, it } from 'vitest';
import { runScenario, type Violations } from './engine.js';
import { details } from './report.js';
import { SCENARIOS, type Scenario } from './scenarios.js';

const NONE: Violations = {
  missing: 0,
  duplicates: 0,
  outOfOrder: 0,
  early: 0,
  phantom: 0,
  barrierUnseen: 0,
  notCaughtUp: 0,
  notReady: 0,
  falseAcks: 0,
  rejectedCommitted: 0,
  doubleApplied: 0,
  slowWrites: 0,
  unrecovered: 0,
  failuresWithoutFault: 0,
  unreadyNodes: 0,
  barrierUnacked: 0,
  faultTrouble: 0,
};

/** The faults of a Fluxo node (faults-nodes.test.ts); every other scenario is in faults-backends.test.ts. */
export const NODE_FAULTS: readonly string[] = [
  'none',
  'node-kill',
  'node-freeze',
  'node-freeze-kill',
  'node-commit-freeze',
  'node-commit-kill',
  'node-quiet-commit-kill',
  'node-drain',
];

/** One test per scenario that `which` picks, each on a fresh cluster. */
export function describeFaults(which: (s: Scenario) => boolean): void {
  const scenarios = SCENARIOS.filter(which);
  describe('every committed event reaches every subscriber of its rooms once and in order; writes fail fast and recover', () => {
    for (const scenario of scenarios) {
      it(`${scenario.name}: ${scenario.what}`, async () => {
        const result = await runScenario({ scenario, log: process.env.FAULT_VERBOSE ? console.log : undefined });
        console.log(details(result));
        // The run did what it claims: writes flowed and readers were given them.
        expect(result.writes.acked).toBeGreaterThan(100);
        expect(result.deliveries).toBeGreaterThan(result.writes.acked);
        expect(result.violations).toEqual(NONE);
      });
    }
  });
}
