import { passed, type ScenarioResult } from './engine.js';

const ms = (n: number) => (Number.isFinite(n) ? `${(n / 1000).toFixed(1)}s` : '∞');

function kinds(r: ScenarioResult): string {
  return Object.entries(r.failedByKind)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k}×${n}`)
    .join(', ');
}

/** One row per scenario: what the brief of the suite asks to see at a glance. */
export function table(results: ScenarioResult[]): string {
  const head = [
    'scenario',
    'acked',
    'unknown',
    'readers',
    'missing',
    'behind',
    'dup',
    'order',
    'early',
    'phantom',
    'false ack',
    'max latency',
    'recovery',
    'verdict',
    'failed attempts by kind',
  ];
  const rows = results.map((r) => [
    r.scenario,
    String(r.writes.acked),
    `${r.writes.unknown} (${r.writes.committedUnacked} in log)`,
    `${r.readers}/${r.readerRooms} rooms`,
    r.verdict.missingUnacked > 0 ? `${r.verdict.missingAcked}+${r.verdict.missingUnacked}u` : String(r.verdict.missingAcked),
    String(r.verdict.notCaughtUp),
    String(r.verdict.duplicates),
    String(r.verdict.outOfOrder),
    String(r.verdict.early),
    String(r.verdict.phantom),
    String(r.verdict.falseAcks),
    ms(r.maxLatencyMs),
    r.recoveryMs.length ? ms(Math.max(...r.recoveryMs)) : '-',
    passed(r) ? 'ok' : 'FAIL',
    kinds(r) || '-',
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(width[i]!) : c.padStart(width[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(head.map((_, i) => '-'.repeat(width[i]!))), ...rows.map(line)].join('\n');
}

/** Everything about one run: violations that are not 0, notes and the first findings. */
export function details(r: ScenarioResult): string {
  const bad = Object.entries(r.violations).filter(([, n]) => n > 0);
  const out = [
    `${r.scenario} — ${r.what}: ${passed(r) ? 'ok' : 'FAIL'} (${ms(r.wallMs)}, ${r.cycles} cycle${r.cycles === 1 ? '' : 's'})`,
    `  writes: ${r.writes.total} (${r.writes.acked} acked, ${r.writes.ackedDuringFault} of them during the fault; ${r.writes.rejected} rejected; ${r.writes.unknown} unknown, ${r.writes.committedUnacked} of which committed)`,
    `  readers: ${r.readers} on ${r.readerRooms} rooms, ${r.deliveries} deliveries, ${r.readerReconnects} reconnects; placement ${JSON.stringify(r.placement)}`,
    `  caught up with every event of the log they are owed, before the barrier: ${Number.isFinite(r.caughtUpMs) ? `${r.caughtUpMs} ms after the writes and nodes settled` : 'not within the bound'}`,
    `  failed attempts: ${kinds(r) || 'none'}`,
    `  max write latency ${ms(r.maxLatencyMs)}; recovery after each heal: ${r.recoveryMs.map(ms).join(', ') || '-'}`,
  ];
  if (bad.length) out.push(`  violations: ${bad.map(([k, n]) => `${k}=${n}`).join(', ')}`);
  for (const n of r.notes) out.push(`  note: ${n}`);
  for (const e of r.verdict.examples) out.push(`  ${e}`);
  if (r.dir) out.push(`  logs: ${r.dir}`);
  return out.join('\n');
}
