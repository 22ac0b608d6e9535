/**
 * `npm run fuzz -- --minutes N [--seed S] [--path P] [--store postgres|pglite] [--keep] [--verbose]`
 *
 * Runs the fuzzer (test/fuzz/engine.ts) against a real node for N minutes — random and mutated
 * HTTP requests and Engine.IO/Socket.IO sessions, a spy of another tenant, the invariants checked
 * after every batch — and prints how many cases ran. A failure is printed with its seed and path
 * (replay it with `--seed S --path P`) and the shrunk counterexample, which is also written to a
 * JSON file ready to be added to test/fuzz/regressions.ts. Exits 1 on a failure.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fuzz } from '../test/fuzz/engine.js';
import { startTarget } from '../test/fuzz/target.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string' },
    path: { type: 'string' },
    store: { type: 'string', default: 'postgres' },
    keep: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('usage: npm run fuzz -- --minutes N [--seed S] [--path P] [--store postgres|pglite] [--keep] [--verbose]');
  process.exit(0);
}
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0) throw new Error('--minutes must be a positive number');
if (values.path !== undefined && values.seed === undefined) throw new Error('--path needs the --seed it came from');
const store = values.store === 'pglite' ? 'pglite' : 'postgres';

const started = Date.now();
console.log(`fuzz: starting a node (${store})…`);
const target = await startTarget({ store, keep: values.keep });
console.log(`fuzz: node ${target.url}, log ${target.logFile}; running for ${minutes} min${values.seed ? `, seed ${values.seed}` : ''}`);
let lastPrint = Date.now();
const stopOnSignal = () => {
  void target.stop().then(() => process.exit(130));
};
process.once('SIGINT', stopOnSignal);
process.once('SIGTERM', stopOnSignal);

let result: Awaited<ReturnType<typeof fuzz>>;
try {
  result = await fuzz(target, {
    timeLimitMs: minutes * 60_000,
    ...(values.seed !== undefined ? { seed: Number(values.seed) } : {}),
    ...(values.path !== undefined ? { path: values.path, numRuns: 1 } : {}),
    onBatch: (s, report) => {
      if (values.verbose) {
        console.log(
          `  batch ${s.batches}: ${report.ms} ms, ${report.http} HTTP + ${report.sockets} sockets${report.slowest ? `; slowest ${report.slowest.ms} ms: ${report.slowest.summary.slice(0, 160)}` : ''}`,
        );
      }
      if (Date.now() - lastPrint < 10_000) return;
      lastPrint = Date.now();
      const secs = (Date.now() - started) / 1000;
      console.log(
        `fuzz: ${secs.toFixed(0)} s — ${s.batches} batches, ${s.cases} cases (${s.http} HTTP, ${s.sockets} socket sessions, ${s.frames} frames), ${(s.cases / secs).toFixed(1)} cases/s`,
      );
    },
  });
} finally {
  await target.stop();
}

const s = result.stats;
const secs = ((Date.now() - started) / 1000).toFixed(0);
console.log(
  `fuzz: ran ${s.cases} cases in ${s.batches} batches (${s.http} HTTP requests, ${s.sockets} socket sessions, ${s.frames} Engine.IO packets) in ${secs} s; seed ${result.seed}; node restarts ${s.restarts}`,
);
if (s.notes.size > 0) {
  console.log('fuzz: allowed but noted:');
  for (const [note, n] of s.notes) console.log(`  ${n} × ${note}`);
}
if (!result.failed) {
  console.log('fuzz: no invariant violated');
  process.exit(0);
}
const file = join(process.cwd(), `fuzz-failure-${result.seed}.json`);
await writeFile(
  file,
  `${JSON.stringify({ seed: result.seed, path: result.path, error: result.error, cases: result.counterexample }, null, 2)}\n`,
);
console.log(`fuzz: FAILED after ${result.numRuns} runs and ${result.numShrinks} shrinks — seed ${result.seed}, path ${result.path}`);
console.log(`fuzz: replay with: npm run fuzz -- --seed=${result.seed} --path=${result.path}`);
console.log(`fuzz: violation:\n${result.error}`);
console.log(`fuzz: counterexample written to ${file}:`);
console.log(JSON.stringify(result.counterexample, null, 2).slice(0, 6000));
process.exit(1);
