import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { sectionMarkdown, sectionText } from '../report.js';
import type { SuiteResult } from './suite.js';
import { SUITES } from './suites.js';

/**
 * `npm run bench [-- <suite>…] [--quick] [suite flags]`: runs the named suites (all when none is
 * named), writes each result to <results>/<suite>.json, then renders bench/RESULTS.md from every
 * JSON there — so re-running one suite keeps the others' committed figures.
 */
// Suite flags pass through to the suites (see flags.ts): an option unknown here is no error.
const { values, positionals } = parseArgs({
  allowPositionals: true,
  strict: false,
  options: {
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
    results: { type: 'string', default: 'bench/results' },
    md: { type: 'string', default: 'bench/RESULTS.md' },
  },
});
const names = SUITES.map((s) => s.name);
const chosen = positionals.filter((a) => names.includes(a));
const [resultsDir, mdFile] = [String(values.results), String(values.md)];
const suiteArgv = process.argv.slice(2).filter((a) => !names.includes(a) && a !== '--quick');

if (values.help) {
  const lines = [
    'Usage: npm run bench [-- <suite>…] [--quick] [--results DIR] [--md FILE] [suite flags]',
    '  no suite named: all of them, in order',
    '  --quick          seconds per suite, small numbers (the CI smoke)',
    '  --results DIR    where each suite writes <suite>.json (default bench/results)',
    '  --md FILE        the report rendered from every JSON in DIR (default bench/RESULTS.md)',
    '',
    'Suites:',
    ...SUITES.map((s) => `  ${s.name.padEnd(12)} ${s.summary}`),
    '',
    ...SUITES.map((s) => `npm run bench -- ${s.usage}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  process.exit(0);
}

const log = (suite: string) => (line: string) => process.stderr.write(`[bench ${suite}] ${line}\n`);

async function main(): Promise<void> {
  const run = chosen.length ? SUITES.filter((s) => chosen.includes(s.name)) : SUITES;
  mkdirSync(resultsDir, { recursive: true });
  let failed = 0;
  for (const suite of run) {
    try {
      const result = await suite.run({ quick: values.quick === true, argv: suiteArgv, log: log(suite.name) });
      process.stdout.write(`\n== ${suite.name} ==\n${sectionText(suite.section(result), result)}\n`);
      const file = join(resultsDir, `${suite.name}.json`);
      writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(`wrote ${file}\n`);
    } catch (err) {
      // One broken suite must not hide the others' figures, but the run still fails.
      failed++;
      process.stderr.write(`bench ${suite.name}: ${err instanceof Error ? err.stack : String(err)}\n`);
    }
  }
  const sections = SUITES.flatMap((s) => {
    const file = join(resultsDir, `${s.name}.json`);
    if (!readdirSync(resultsDir).includes(`${s.name}.json`)) return [];
    const result = JSON.parse(readFileSync(file, 'utf8')) as SuiteResult;
    return [sectionMarkdown(s.section(result), result)];
  });
  mkdirSync(dirname(mdFile), { recursive: true });
  writeFileSync(
    mdFile,
    [
      '# Benchmark results',
      '',
      'Rendered by `npm run bench` from the JSON files beside this report; each section says when and on',
      'which commit it was measured. Targets are those of issues 4 and 13. What bounds a missed target is in',
      '[NOTES.md](NOTES.md).',
      '',
      ...sections,
    ].join('\n'),
  );
  process.stdout.write(`wrote ${mdFile}\n`);
  if (failed) throw new Error(`${failed} suite(s) failed`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
