import type { FanoutResult } from './fanout.js';

/** A self-contained HTML report (inline SVG, no scripts, no network) for a fan-out run. */

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

function axis(maxX: number, maxY: number, xLabel: string, yLabel: string): string {
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const y = ticks
    .map((f) => {
      const py = H - PAD - f * (H - 2 * PAD);
      return `<line x1="${PAD}" x2="${W - RIGHT}" y1="${py}" y2="${py}" stroke="#eee"/><text x="${PAD - 4}" y="${py + 4}" text-anchor="end">${+(f * maxY).toPrecision(3)}</text>`;
    })
    .join('');
  const x = ticks
    .map((f) => `<text x="${PAD + f * (W - PAD - RIGHT)}" y="${H - PAD + 16}" text-anchor="middle">${+(f * maxX).toPrecision(3)}</text>`)
    .join('');
  return `${y}${x}<text x="${W / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text><text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">${esc(yLabel)}</text>`;
}

function lineChart(title: string, lines: Line[], xLabel: string, yLabel: string, xLog = false): string {
  const fx = (v: number) => (xLog ? Math.log10(1 / Math.max(1e-6, 1 - v / 100)) : v);
  const all = lines.flatMap((l) => l.points);
  const maxX = Math.max(1e-9, ...all.map((p) => fx(p[0])));
  const maxY = Math.max(1e-9, ...all.map((p) => p[1])) * 1.05;
  const sx = (v: number) => PAD + (fx(v) / maxX) * (W - PAD - RIGHT);
  const sy = (v: number) => H - PAD - (v / maxY) * (H - 2 * PAD);
  const paths = lines
    .map((l) => {
      const d = l.points.map((p, i) => `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
      return `<path d="${d}" fill="none" stroke="${l.color}" stroke-width="1.8"/>`;
    })
    .join('');
  const legend = lines.map((l, i) => `<text x="${PAD + 10 + i * 110}" y="16" fill="${l.color}">■ ${esc(l.name)}</text>`).join('');
  const xAxis = xLog
    ? `${[50, 90, 99, 99.9, 99.99]
        .filter((p) => fx(p) <= maxX)
        .map((p) => `<text x="${sx(p)}" y="${H - PAD + 16}" text-anchor="middle">p${p}</text>`)
        .join('')}<text x="${W / 2}" y="${H - 6}" text-anchor="middle">${esc(xLabel)}</text>`
    : '';
  const frame = xLog
    ? axis(1, maxY, '', yLabel).replace(/<text x="[^"]*" y="[^"]*" text-anchor="middle">[^<]*<\/text>/g, '')
    : axis(maxX, maxY, xLabel, yLabel);
  return `<h2>${esc(title)}</h2><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-size="11" font-family="sans-serif">${frame}${xAxis}${paths}${legend}</svg>`;
}

export function fanoutHtml(r: FanoutResult): string {
  const s = r.series;
  const l = r.latencyMs;
  const rows: [string, string][] = [
    [
      'Subscribers connected',
      `${r.connect.connected} / ${r.connect.attempted} (connect p50 ${r.connect.timeMs.p50} ms, p99 ${r.connect.timeMs.p99} ms)`,
    ],
    ['Rooms / publishers / mode', `${r.options.rooms} / ${r.options.publishers} / ${r.options.mode}`],
    ['Offered rate', r.options.rate > 0 ? `${r.options.rate} events/s` : 'flat out'],
    ['Published', `${r.published} in ${r.durationS} s (${r.publishedPerS}/s)`],
    ['Delivered', `${r.delivered} of ${r.expectedDeliveries} expected (${r.deliveredPerS}/s)`],
    ['Latency commit → receipt', `p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, p99.9 ${l.p999} ms, max ${l.max} ms`],
    ['Missing / duplicates / unexpected', `${r.missingTotal} / ${r.duplicates} / ${r.unexpected}`],
    ['Publish errors', esc(JSON.stringify(r.publishErrors))],
  ];
  const missing = r.missing
    .slice(0, 200)
    .map(
      (m) =>
        `<li>subscriber ${esc(m.subscriber)} in ${esc(m.roomKey)}: ${m.ids.slice(0, 50).join(', ')}${m.ids.length > 50 ? ' …' : ''}</li>`,
    )
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>Fluxo fan-out report</title>
<style>body{font-family:sans-serif;max-width:720px;margin:2em auto;color:#222}td{padding:2px 10px;border-bottom:1px solid #eee}</style></head><body>
<h1>Fluxo fan-out — ${esc(r.options.url)}</h1>
<table>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`).join('')}</table>
${lineChart(
  'Latency over time',
  [
    // A window in which nothing arrived has no latency: leave it out rather than draw 0 ms.
    { name: 'p50', color: '#1f77b4', points: s.filter((x) => x.deliveredPerS > 0).map((x) => [x.t, x.p50]) },
    { name: 'p99', color: '#d62728', points: s.filter((x) => x.deliveredPerS > 0).map((x) => [x.t, x.p99]) },
  ],
  'seconds',
  'ms',
)}
${lineChart('Latency distribution', [{ name: 'latency', color: '#9467bd', points: r.percentiles.filter(([p]) => p < 100) }], 'percentile', 'ms', true)}
${lineChart('Throughput', [{ name: 'delivered/s', color: '#2ca02c', points: s.map((x) => [x.t, x.deliveredPerS]) }], 'seconds', 'messages/s')}
${missing ? `<h2>Missing events</h2><ul>${missing}</ul>` : '<p>No missing events.</p>'}
</body></html>`;
}
