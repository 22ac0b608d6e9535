import type { FanoutResult } from './fanout.js';
import { formatCounts } from './report.js';

/* The fan-out run's HTML report: self-contained (inline SVG, no scripts, no network). */

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

interface Line {
  name: string;
  color: string;
  points: [number, number][];
}

const W = 640;
const H = 220;
const PAD = 44;
/**
 * Right margin: the last x tick label is centred on the plot's right edge, and half of the widest one
 * ("p99.99" at 11 px sans-serif, ~36 px) must still fit inside the SVG.
 */
const RIGHT = 24;

/**
 * Round axis ticks from 0 to at least `max`: steps of 1, 2, 2.5 or 5 × 10ⁿ, about `count` of them
 * (0, 20, 40, 60, 80 — not 0, 19.4, 38.8, …). The last tick is the axis's top.
 */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const rough = max / (count - 1);
  const mag = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * mag >= rough) ?? 10) * mag;
  const ticks: number[] = [];
  for (let i = 0; ; i++) {
    const v = Number((i * step).toPrecision(12));
    ticks.push(v);
    if (v >= max) return ticks;
  }
}

/** A tick label: no float noise (0.30000000000000004), thousands as 1k … when large. */
function tickLabel(v: number): string {
  if (v >= 10_000) return `${Number((v / 1000).toPrecision(6))}k`;
  return String(Number(v.toPrecision(6)));
}

function lineChart(title: string, lines: Line[], xLabel: string, yLabel: string, xLog = false): string {
  const fx = (v: number) => (xLog ? Math.log10(1 / Math.max(1e-6, 1 - v / 100)) : v);
  const all = lines.flatMap((l) => l.points);
  if (!all.length) return `<h2>${esc(title)}</h2><p>No data.</p>`;
  const yTicks = niceTicks(Math.max(...all.map((p) => p[1])));
  const maxY = yTicks[yTicks.length - 1]!;
  const xTicks = xLog ? [50, 90, 99, 99.9, 99.99] : niceTicks(Math.max(...all.map((p) => p[0])));
  const maxX = xLog ? Math.max(1e-9, ...all.map((p) => fx(p[0]))) : xTicks[xTicks.length - 1]!;
  const sx = (v: number) => PAD + (fx(v) / maxX) * (W - PAD - RIGHT);
  const sy = (v: number) => H - PAD - (v / maxY) * (H - 2 * PAD);
  const grid = yTicks
    .map(
      (v) =>
        `<line x1="${PAD}" x2="${W - RIGHT}" y1="${sy(v)}" y2="${sy(v)}" stroke="#eee"/><text x="${PAD - 4}" y="${sy(v) + 4}" text-anchor="end">${tickLabel(v)}</text>`,
    )
    .join('');
  const xAxis = xTicks
    .filter((v) => fx(v) <= maxX * 1.0001)
    .map((v) => `<text x="${sx(v)}" y="${H - PAD + 16}" text-anchor="middle">${xLog ? `p${v}` : tickLabel(v)}</text>`)
    .join('');
  const labels = `<text x="${W / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text><text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">${esc(yLabel)}</text>`;
  const paths = lines
    .map((l) => {
      const d = l.points.map((p, i) => `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
      return `<path d="${d}" fill="none" stroke="${l.color}" stroke-width="1.8"/>`;
    })
    .join('');
  const legend = lines.map((l, i) => `<text x="${PAD + 10 + i * 110}" y="16" fill="${l.color}">■ ${esc(l.name)}</text>`).join('');
  return `<h2>${esc(title)}</h2><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-size="11" font-family="sans-serif" role="img" aria-label="${esc(title)}">${grid}${xAxis}${labels}${paths}${legend}</svg>`;
}

const table = (rows: [string, string][]) =>
  `<table>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}</table>`;

export function fanoutHtml(r: FanoutResult): string {
  const s = r.series;
  const l = r.latencyMs;
  const o = r.options;
  const met = r.thresholds.every((t) => t.ok);
  const config: [string, string][] = [
    ['Target', `${r.target.url}${r.target.node ? ` (node ${r.target.node})` : ''}`],
    ['Subscribers / rooms', `${o.subscribers} over ${o.rooms} room(s)`],
    ['Publishers / mode', `${o.publishers} / ${o.mode}${o.mode === 'publish' ? `, ${o.inflight ?? 4} in flight each when flat out` : ''}`],
    ['Events', `${o.events ?? 'unbounded'}${o.durationS ? `, at most ${o.durationS} s` : ''}`],
    ['Offered rate', o.rate > 0 ? `${o.rate} events/s` : 'flat out'],
    ['Payload padding', `${o.payloadBytes} bytes`],
    ['Client processes / source addresses', `${o.processes} / ${o.sourceAddresses || 'default'}`],
    ['Connect rate', `${o.connectRate} sockets/s`],
    ['Tool', `${r.tool.name} ${r.tool.version} (${r.tool.commit.slice(0, 12)}), Node ${r.tool.node}`],
  ];
  const results: [string, string][] = [
    [
      'Subscribers connected',
      `${r.connect.connected} / ${r.connect.attempted} (connect p50 ${r.connect.timeMs.p50} ms, p99 ${r.connect.timeMs.p99} ms)`,
    ],
    ['Connect errors', formatCounts(r.connect.errors)],
    ['Published', `${r.published} in ${r.durationS} s (${r.publishedPerS}/s)`],
    ['Publish errors', formatCounts(r.publishErrors)],
    ['Delivered', `${r.delivered} of ${r.expectedDeliveries} expected (${r.deliveredPerS}/s)`],
    ['Latency commit → receipt', `p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, p99.9 ${l.p999} ms, max ${l.max} ms`],
    ['Missing / duplicates / unexpected', `${r.missingTotal} / ${r.duplicates} / ${r.unexpected}`],
    ['Disconnects', String(r.disconnects)],
  ];
  const thresholds = r.thresholds
    .map(
      (t) =>
        `<tr class="${t.ok ? 'ok' : 'bad'}"><td>${t.ok ? '✓ met' : '✗ NOT MET'}</td><td>${esc(t.name)} ${esc(t.condition)}</td><td>${esc(t.actual)}</td></tr>`,
    )
    .join('');
  const missing = r.missing
    .slice(0, 200)
    .map(
      (m) =>
        `<li>subscriber ${esc(m.subscriber)} in ${esc(m.roomKey)}: ${m.ids.slice(0, 50).join(', ')}${m.ids.length > 50 ? ' …' : ''}</li>`,
    )
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Fluxo fan-out report ${esc(r.startedAt)}</title>
<style>body{font-family:sans-serif;max-width:720px;margin:2em auto;color:#222}td{padding:2px 10px;border-bottom:1px solid #eee}
.verdict{padding:6px 10px;font-weight:bold}.ok td:first-child,.verdict.ok{color:#0a6b2d}.bad td:first-child,.verdict.bad{color:#b00020}</style></head><body>
<h1>Fluxo fan-out — ${esc(r.target.url)}</h1>
<p>Run <time datetime="${esc(r.startedAt)}">${esc(r.startedAt)}</time> → <time datetime="${esc(r.finishedAt)}">${esc(r.finishedAt)}</time> (UTC)</p>
<p class="verdict ${met ? 'ok' : 'bad'}">Thresholds ${met ? 'met' : 'NOT met'}</p>
<h2>Thresholds</h2><table>${thresholds}</table>
<h2>Configuration</h2>${table(config)}
<h2>Results</h2>${table(results)}
${lineChart(
  'Latency over time',
  [
    // A window in which nothing arrived has no latency: leave it out rather than draw 0 ms.
    { name: 'p50', color: '#1f77b4', points: s.filter((x) => x.deliveredPerS > 0).map((x) => [x.t, x.p50]) },
    { name: 'p99', color: '#d62728', points: s.filter((x) => x.deliveredPerS > 0).map((x) => [x.t, x.p99]) },
  ],
  'seconds since publishing began',
  'latency (ms)',
)}
${lineChart('Latency distribution', [{ name: 'latency', color: '#9467bd', points: r.percentiles.filter(([p]) => p < 100) }], 'percentile', 'latency (ms)', true)}
${lineChart('Throughput', [{ name: 'delivered/s', color: '#2ca02c', points: s.map((x) => [x.t, x.deliveredPerS]) }], 'seconds since publishing began', 'messages/s')}
${missing ? `<h2>Missing events</h2><ul>${missing}</ul>` : '<p>No missing events.</p>'}
</body></html>`;
}
