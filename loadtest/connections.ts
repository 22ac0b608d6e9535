import { token } from '../scripts/topology/tokens.js';
import { closeAll, openWave, spawnWorkers } from './clients.js';
import { newRunId, runTenant, serverMetric, sleep, sourceAddresses } from './setup.js';
import { type LatencySummary, summarize } from './stats.js';

/**
 * Connection capacity: opens N idle authenticated sockets at a given rate from one client process
 * (client-worker.ts), holds them, and reads the server's RSS from /metrics before and after. One
 * process holds at most ~19,000 sockets (20,000 open files here); for more, run several and add
 * up, or raise `ulimit -n`.
 */
export interface ConnectionsOptions {
  url: string;
  secret: string;
  count: number;
  /** New connections per second. */
  rate: number;
  holdS: number;
  /** Distinct loopback source addresses (127.0.X.1); more than one also spreads the per-IP handshake limit. */
  sourceAddresses: number;
  /** Subscribe each socket to its tenant room after connecting (an idle but realistic client). */
  subscribe?: boolean;
  progress?: boolean;
}

export interface ConnectionsResult {
  scenario: 'connections';
  options: Omit<ConnectionsOptions, 'secret'>;
  attempted: number;
  connected: number;
  successRate: number;
  connectPerS: number;
  timeMs: LatencySummary;
  errors: Record<string, number>;
  /** Still connected at the end of the hold. */
  heldToEnd: number;
  rssBeforeBytes: number | null;
  rssAfterBytes: number | null;
  /** (after − before) / connected. */
  rssPerConnectionBytes: number | null;
}

const RSS = 'process_resident_memory_bytes';

export async function runConnections(o: ConnectionsOptions): Promise<ConnectionsResult> {
  const tenant = runTenant(newRunId(), 0);
  // One token for all: minting thousands adds nothing the fan-out run does not already measure.
  const ttlS = Math.max(3600, o.holdS * 2 + 600);
  const shared = await token({ sub: 'lt-idle', tid: tenant, role: 'viewer', ttlS, secret: o.secret });
  const rssBefore = await serverMetric(o.url, RSS);
  const { workers, close } = spawnWorkers(1);
  const progress = o.progress
    ? setInterval(() => process.stderr.write(`\r[connections] ${workers[0]!.held}/${o.count} open, ${workers[0]!.failed} failed   `), 1000)
    : undefined;
  try {
    const wave = await openWave(workers, () => ({
      url: o.url,
      protocol: 'socket.io',
      count: o.count,
      rate: o.rate,
      tokens: [shared],
      rooms: o.subscribe ? [{ name: 'tenant', key: 'tenant' }] : [],
      localAddresses: o.sourceAddresses > 0 ? sourceAddresses(o.sourceAddresses) : [],
    }));
    await sleep(o.holdS * 1000);
    const rssAfter = await serverMetric(o.url, RSS);
    clearInterval(progress);
    if (o.progress) process.stderr.write('\n');
    const dropped = await closeAll(workers);
    const { secret: _s, ...shown } = o;
    return {
      scenario: 'connections',
      options: shown,
      attempted: o.count,
      connected: wave.connected,
      successRate: o.count ? wave.connected / o.count : 1,
      connectPerS: Math.round(wave.connected / Math.max(0.001, wave.seconds)),
      timeMs: summarize(wave.hist),
      errors: wave.errors,
      heldToEnd: wave.connected - dropped,
      rssBeforeBytes: rssBefore,
      rssAfterBytes: rssAfter,
      rssPerConnectionBytes: perConnection(rssBefore, rssAfter, wave.connected),
    };
  } finally {
    clearInterval(progress);
    close();
  }
}

/**
 * A server that frees start-up memory during the run (GC, a warmed-up embedded database) can end
 * below its starting RSS; then the sockets' share cannot be told apart and no figure is given
 * (compare two runs with different --count instead, on a server that has served traffic first).
 */
function perConnection(before: number | null, after: number | null, n: number): number | null {
  if (before === null || after === null || n === 0 || after < before) return null;
  return Math.round((after - before) / n);
}

export function formatConnections(r: ConnectionsResult): string {
  const kb = (b: number | null) => (b === null ? 'n/a' : `${(b / 1024).toFixed(1)} KiB`);
  return [
    `connected   ${r.connected}/${r.attempted} (${(r.successRate * 100).toFixed(2)} %) at ${r.connectPerS}/s, ${r.heldToEnd} held to the end`,
    `connect     p50 ${r.timeMs.p50} ms  p99 ${r.timeMs.p99} ms  max ${r.timeMs.max} ms`,
    `server RSS  ${kb(r.rssBeforeBytes)} → ${kb(r.rssAfterBytes)}: ${
      r.rssPerConnectionBytes === null
        ? 'n/a per connection (RSS fell during the run: compare two runs with different --count on a warmed-up server)'
        : `${kb(r.rssPerConnectionBytes)} per connection`
    }`,
    ...Object.entries(r.errors).map(([k, v]) => `error       ${v} × ${k}`),
  ].join('\n');
}
