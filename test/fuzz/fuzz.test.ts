/**
 * The fuzzer in CI: first the regression inputs (regressions.ts), then random batches for a
 * bounded time (FUZZ_SECONDS, default 40; FUZZ_SEED to replay a run), against a real node process
 * on Postgres with a spy of another tenant. `npm run fuzz -- --minutes N` runs the same longer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzz, runBatch } from './engine.js';
import { REGRESSIONS } from './regressions.js';
import { startTarget, type Target } from './target.js';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 40);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

let target: Target;
beforeAll(async () => {
  target = await startTarget();
}, 120_000);
afterAll(async () => {
  await target?.stop();
});

describe('fuzz regressions', () => {
  for (const r of REGRESSIONS) {
    it(`${r.name} (${r.found})`, async () => {
      if (!(await target.healthy()).ok) await target.restart();
      const report = await runBatch(target, r.cases, 1);
      expect(report.failures, report.failures.join('\n')).toEqual([]);
    });
  }
});

describe('fuzz', () => {
  it(`holds every invariant for random HTTP requests and socket sessions (${SECONDS} s)`, async () => {
    if (!(await target.healthy()).ok) await target.restart();
    const result = await fuzz(target, { timeLimitMs: SECONDS * 1000, ...(SEED !== undefined ? { seed: SEED } : {}) });
    const s = result.stats;
    console.log(
      `fuzz: ${s.cases} cases in ${s.batches} batches (${s.http} HTTP requests, ${s.sockets} socket sessions, ${s.frames} Engine.IO packets), seed ${result.seed}, ${s.restarts} node restarts; notes: ${[...s.notes].map(([n, k]) => `${k} × ${n}`).join('; ') || 'none'}`,
    );
    const report = result.failed
      ? `seed ${result.seed}, path ${result.path} (replay: FUZZ_SEED=${result.seed} or npm run fuzz -- --seed ${result.seed} --path ${result.path})\n${result.error}\ncounterexample: ${JSON.stringify(result.counterexample).slice(0, 4000)}`
      : '';
    expect(result.failed, report).toBe(false);
    expect(s.batches).toBeGreaterThan(0);
  });
});
