import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } } },
      {
        test: {
          name: 'types',
          sequence: { groupOrder: 0 },
          // Type tests only (tsc, nothing runs): a `@ts-expect-error` that meets no error fails them.
          // Their own tsconfig checks them and what they import, not the whole tree (`npm run typecheck` does).
          typecheck: { enabled: true, only: true, include: ['test/types/**/*.test-d.ts'], tsconfig: 'test/types/tsconfig.json' },
        },
      },
      {
        test: {
          name: 'integration',
          sequence: { groupOrder: 1 },
          include: ['test/integration/**/*.test.ts'],
          // Upper bounds of waits for conditions, not durations: a test ends when its condition holds. A
          // node's cold start (tsx compiling the server) took 38 s on a 2-core machine at load 12-16.
          testTimeout: 90_000,
          hookTimeout: 120_000,
          // Real servers (Postgres, Redis, nodes) per file: keep the 2-core machine from thrashing.
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 60000,
          hookTimeout: 60000,
          sequence: { groupOrder: 2 },
        },
      },
      {
        test: {
          name: 'fault',
          include: ['test/fault/**/*.test.ts'],
          sequence: { groupOrder: 3 },
          // A scenario is bounded by its own deadlines (engine.ts); this only stops a hung one.
          testTimeout: 300_000,
          // Two clusters at a time: each scenario is mostly fixed phases (warm-up, the fault's hold,
          // steady writes), and its latency and recovery bounds held in a whole-suite run while the
          // machine's load average was 11-16 (bench/NOTES.md is where timing is measured).
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: 'fuzz',
          include: ['test/fuzz/**/*.test.ts'],
          sequence: { groupOrder: 4 },
          // The random run is bounded by FUZZ_SECONDS (40 s by default) plus its last shrink; this only stops a hung one.
          testTimeout: 180_000,
          hookTimeout: 120_000,
          // One node under fire at a time.
          maxWorkers: 1,
        },
      },
    ],
  },
});
