/**
 * `npm run chaos -- --minutes N [--scenario name …] [--keep]`
 * The fault suite's scenarios (test/fault: a 3-node cluster behind nginx, Redis, durable Postgres
 * primary + replica, writers and SDK readers), each on a fresh cluster and for longer than the
 * tests run them: the fault is injected and healed again and again for the scenario's share of the
 * N minutes. Prints a table (writes acked, failed attempts by kind, readers, missing, duplicates,
 * out-of-order, max write latency) and exits 1 if any scenario broke the guarantee. Ctrl-C ends
 * the current scenario after its cycle (barrier and check included); a second Ctrl-C exits.
 */
import { parseArgs } from 'node:util';
import { passed, runScenario, type ScenarioResult } from '../test/fault/engine.js';
import { details, table } from '../test/fault/report.js';
import { SCENARIOS, scenarioNamed } from '../test/fault/scenarios.js';

const USAGE = `usage: npm run chaos -- --minutes N [--scenario name]… [--keep] [--writers 6] [--rate 60] [--readers 16] [--late-readers 4]
scenarios: ${SCENARIOS.map((s) => s.name).join(', ')} (default: all)`;
/** Set-up, warm-up, barrier and check take about this much of each scenario's share. */
const OVERHEAD_MS = 30_000;

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    scenario: { type: 'string', multiple: true },
    keep: { type: 'boolean', default: false },
    writers: { type: 'string', default: '6' },
    rate: { type: 'string', default: '60' },
    readers: { type: 'string', default: '16' },
    'late-readers': { type: 'string', default: '4' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const minutes = Number(values.minutes);
const counts = {
  writers: Number(values.writers),
  rate: Number(values.rate),
  readers: Number(values.readers),
  late: Number(values['late-readers']),
};
if (!(minutes > 0) || !Object.values(counts).every((n) => Number.isInteger(n) && n >= 0) || counts.writers < 1 || counts.rate < 1) {
  console.error(`chaos: --minutes must be > 0, counts whole numbers\n${USAGE}`);
  process.exit(2);
}
let scenarios: typeof SCENARIOS;
try {
  scenarios = values.scenario?.length ? values.scenario.map(scenarioNamed) : SCENARIOS;
} catch (err) {
  console.error(`chaos: ${(err as Error).message}`);
  process.exit(2);
}

const abort = new AbortController();
process.on('SIGINT', () => {
  if (abort.signal.aborted) process.exit(130);
  console.log('\nchaos: finishing the current cycle (Ctrl-C again to exit at once)');
  abort.abort();
});

const share = (minutes * 60_000) / scenarios.length;
const results: ScenarioResult[] = [];
for (const scenario of scenarios) {
  if (abort.signal.aborted) break;
  try {
    const result = await runScenario({
      scenario,
      faultPhaseMs: Math.max(0, share - OVERHEAD_MS),
      writers: counts.writers,
      rateHz: counts.rate,
      readers: counts.readers,
      lateReaders: counts.late,
      keep: values.keep,
      signal: abort.signal,
      log: (line) => console.log(line),
    });
    results.push(result);
    console.log(`\n${details(result)}\n`);
  } catch (err) {
    console.error(`chaos: ${scenario.name} could not run: ${err instanceof Error ? err.stack : String(err)}`);
    process.exitCode = 1;
  }
}
if (results.length) console.log(`\n${table(results)}`);
if (!results.every(passed)) process.exitCode = 1;
