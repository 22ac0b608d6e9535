import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_FLUXO_URL, fluxoUrl, requireNode, UnreachableError } from '../scripts/fluxo-url.js';
import type { HttpScenario } from './http.js';
import type { PublishMode } from './publishers.js';
import { resolveSecret } from './setup.js';

// A scenario's module is loaded only when it runs: the fixtures it shares with the tests
// (scripts/topology) load the whole server, which --help and a wrong URL need not wait for.
const HTTP_SCENARIOS: readonly HttpScenario[] = ['health', 'read', 'transition', 'transition-rmw'];

const HELP = `Usage: npm run loadtest -- <scenario> [options]

Scenarios
  health            GET /health (no auth)
  read              GET /api/processes (the list read path; a replica when configured)
  transition        POST /api/processes/:id/transition, blind writes
  transition-rmw    GET the process, then transition with expectedVersion
  fanout            N WebSocket subscribers over R rooms, P publishers; drops, duplicates, latency
  connections       N idle authenticated sockets; success rate, connect time, server RSS per socket

Common
  --url URL              Fluxo base URL                      (default $FLUXO_URL, else ${DEFAULT_FLUXO_URL})
  --secret S             HS256 secret to mint tokens         (default $JWT_SECRET, else the dev secret)
  --out FILE             JSON result                         (default loadtest/results/<scenario>.json)
  --max-p99 MS           threshold: latency p99 at most MS (HTTP: per request, per operation for transition-rmw)
  --quiet                no live progress line
  -h, --help

Thresholds: every run checks its own (HTTP: no transport error, every response 2xx; fanout: every
subscriber connected, every publish accepted, nothing missing or duplicated) plus --max-p99, prints
them, records them in the JSON (and the HTML report), and exits 99 when one is not met (as k6 does).
Exit codes: 0 met, 99 a threshold not met, 69 nothing (or not Fluxo) answers at the URL, 64 usage, 1 other errors.

HTTP (health, read, transition, transition-rmw)
  --connections N        concurrent connections, one user each (default 10)
  --duration S           seconds (default 10)
  --rate N               offered requests/s overall; 0 = flat out (default 0)

fanout
  --subscribers N        (default 100)        --rooms R            (default 1)
  --publishers P         (default 1)          --mode publish|http|socket (default publish)
  --publish-key K        PUBLISH_API_KEY of the server (default $PUBLISH_API_KEY)
  --events N             events to publish (default 1000)   --duration S  stop after S seconds too
  --rate N               offered events/s overall; 0 = flat out (default 0)
  --inflight N           publish-API requests in flight per publisher when flat out (default 4)
  --payload-bytes N      padding in each event's data (default 100)
  --processes N          client processes (default 2)
  --source-addresses N   spread clients over 127.0.X.1, X = 1..N (nginx ip_hash); 0 = default (default 0)
  --connect-rate N       new sockets/s overall (default 500)
  --html FILE            HTML report (default loadtest/results/fanout.html)

connections
  --count N              sockets to open (default 1000; at most ~19,000 per process here)
  --rate N               new sockets/s (default 500)
  --hold S               seconds to hold them open (default 5)
  --source-addresses N   as above (default 0)
  --subscribe            subscribe each socket to its tenant room

The server's rate limits apply to load tests too: raise them for the run, e.g.
  RATE_LIMITS=handshake=100000/1,publish=100000/1,process:transition=100000/1,http:write=100000/1,http:read=100000/1
and, for many sockets of one user or one address, MAX_SOCKETS_PER_USER=100000 MAX_SOCKETS_PER_IP=100000
`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    secret: { type: 'string' },
    out: { type: 'string' },
    html: { type: 'string' },
    quiet: { type: 'boolean', default: false },
    'max-p99': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
    connections: { type: 'string', default: '10' },
    duration: { type: 'string' },
    rate: { type: 'string', default: '0' },
    subscribers: { type: 'string', default: '100' },
    rooms: { type: 'string', default: '1' },
    publishers: { type: 'string', default: '1' },
    mode: { type: 'string', default: 'publish' },
    'publish-key': { type: 'string' },
    events: { type: 'string', default: '1000' },
    inflight: { type: 'string', default: '4' },
    'payload-bytes': { type: 'string', default: '100' },
    processes: { type: 'string', default: '2' },
    'source-addresses': { type: 'string', default: '0' },
    'connect-rate': { type: 'string', default: '500' },
    count: { type: 'string', default: '1000' },
    hold: { type: 'string', default: '5' },
    subscribe: { type: 'boolean', default: false },
  },
});

function int(name: keyof typeof values, fallback?: number): number {
  const raw = values[name];
  if (raw === undefined && fallback !== undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${String(raw)}`);
  return n;
}

function write(file: string, text: string): string {
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}

async function main(): Promise<void> {
  const scenario = positionals[0];
  if (values.help || !scenario) {
    process.stdout.write(HELP);
    process.exit(scenario || values.help ? 0 : 64);
  }
  if (![...HTTP_SCENARIOS, 'fanout', 'connections'].includes(scenario)) {
    process.stderr.write(`unknown scenario "${scenario}"\n\n${HELP}`);
    process.exit(64);
  }
  const url = fluxoUrl(values.url);
  // Before any set-up: one clear line when nothing (or not Fluxo) answers there.
  await requireNode(url);
  const secret = resolveSecret(values.secret);
  const progress = !values.quiet;
  const out = values.out ?? `loadtest/results/${scenario}.json`;
  const maxP99Ms = values['max-p99'] === undefined ? {} : { maxP99Ms: int('max-p99') };
  let result: { thresholds: { ok: boolean }[] };
  if ((HTTP_SCENARIOS as readonly string[]).includes(scenario)) {
    const { formatHttp, runHttp } = await import('./http.js');
    const r = await runHttp({
      url,
      secret,
      scenario: scenario as HttpScenario,
      connections: int('connections'),
      durationS: int('duration', 10),
      rate: int('rate'),
      ...maxP99Ms,
      progress,
    });
    process.stdout.write(`${formatHttp(r)}\n`);
    result = r;
  } else if (scenario === 'fanout') {
    const [{ formatFanout, runFanout }, { PUBLISH_MODES }, { fanoutHtml }] = await Promise.all([
      import('./fanout.js'),
      import('./publishers.js'),
      import('./report-html.js'),
    ]);
    const mode = values.mode as PublishMode;
    if (!PUBLISH_MODES.includes(mode)) throw new Error(`--mode must be one of ${PUBLISH_MODES.join(', ')}`);
    const publishKey = values['publish-key'] ?? process.env.PUBLISH_API_KEY;
    const r = await runFanout({
      url,
      secret,
      subscribers: int('subscribers'),
      rooms: Math.max(1, int('rooms')),
      publishers: Math.max(1, int('publishers')),
      mode,
      ...(publishKey ? { publishKey } : {}),
      events: int('events'),
      ...(values.duration ? { durationS: int('duration') } : {}),
      rate: int('rate'),
      inflight: Math.max(1, int('inflight')),
      payloadBytes: int('payload-bytes'),
      processes: Math.max(1, int('processes')),
      sourceAddresses: int('source-addresses'),
      connectRate: Math.max(1, int('connect-rate')),
      ...maxP99Ms,
      progress,
    });
    process.stdout.write(`${formatFanout(r)}\n`);
    process.stdout.write(`html         ${write(values.html ?? 'loadtest/results/fanout.html', fanoutHtml(r))}\n`);
    result = r;
  } else if (scenario === 'connections') {
    const { formatConnections, runConnections } = await import('./connections.js');
    const r = await runConnections({
      url,
      secret,
      count: int('count'),
      rate: Math.max(1, int('rate', 500) || 500),
      holdS: int('hold'),
      sourceAddresses: int('source-addresses'),
      subscribe: values.subscribe,
      progress,
    });
    process.stdout.write(`${formatConnections(r)}\n`);
    result = { ...r, thresholds: [] };
  } else {
    process.stderr.write(`unknown scenario "${scenario}"\n\n${HELP}`);
    process.exit(64);
  }
  process.stdout.write(`json         ${write(out, `${JSON.stringify(result, null, 2)}\n`)}\n`);
  if (!result.thresholds.every((t) => t.ok)) {
    process.stderr.write('loadtest: thresholds not met (see above)\n');
    process.exit(99);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`loadtest: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof UnreachableError ? UnreachableError.EXIT_CODE : 1);
  },
);
