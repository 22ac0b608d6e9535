import { token } from '../../scripts/topology/tokens.js';
import { closeAll, openWave, shares, spawnWorkers, type Wave, type Worker } from '../clients.js';
import { sleep, sourceAddresses } from '../setup.js';
import { newHistogram, summarize } from '../stats.js';
import { type BenchContext, benchContext, ENGINES, type EngineId } from './engines.js';
import { suiteFlags } from './flags.js';
import { bytesPerSocket, GC_HOOK_NODE_OPTIONS, settledRss } from './rss.js';
import { check, envelope, type Suite, type SuiteResult, type TargetCheck } from './suite.js';

/**
 * Idle sockets on one node: Fluxo (authenticated) vs plain Socket.IO vs bare Socket.IO on uWS.
 * Per engine one server process takes a warm-up wave, then ramps to each count; RSS is read after
 * forced GC at every level and a socket's share is the slope above the first level (see rss.ts).
 */
const ENGINE_IDS = ['fluxo', 'socketio-ws', 'socketio-uws'] as const;
type ConnEngineId = (typeof ENGINE_IDS)[number];

const USAGE = `connections [options]
  --counts a,b         socket counts reported on one node (default 10000,15000; quick 1000)
  --steps N            RSS readings between the first level and the largest count (default 6; quick 2)
  --rate N             new sockets per second, all workers together (default 2000)
  --engines a,b        subset of ${ENGINE_IDS.join(', ')}
  --processes N        client processes (default: enough for ≤ 8,000 sockets each, at least 2)
  --sources N          loopback source addresses 127.0.X.1 (default: one per 5,000 sockets)
  --inflight N         handshakes in flight at most, all workers together (default 200)
  --room NAME          also subscribe every socket to this room (default: connected and idle only)`;

/** Issue 4's idle-socket figures, in KB as the issue gives them. */
const ISSUE_KB: Partial<Record<ConnEngineId, number>> = { 'socketio-ws': 14.6, 'socketio-uws': 9.8 };
const TARGET_KIB = 8;
const TARGET_SOCKETS = 15_000;
/** Sockets per client process: well under the 20,000 open files a process may have here. */
const PER_PROCESS = 8000;
/** Sockets per loopback source address (see options()). */
const PER_SOURCE = 5000;

export interface Level {
  /** Sockets the ramp aimed at. */
  target: number;
  attempted: number;
  connected: number;
  /** Still open when RSS was read (the server closed none of them). */
  held: number;
  /** Of this level's new sockets: opened per second, and time to connect. */
  connectPerS: number;
  connectP50Ms: number;
  connectP99Ms: number;
  rssBytes: number;
  rssSpreadBytes: number;
  /** V8 heap in use after GC (null if the GC hook did not answer). */
  heapUsedBytes: number | null;
  /** (RSS − RSS at the first level) / (sockets − sockets at the first level); null at the first level. */
  bytesPerSocket: number | null;
  errors: Record<string, number>;
}

export interface EngineRun {
  engine: ConnEngineId;
  label: string;
  /** Least-squares slope of RSS over every level. */
  bytesPerSocket: number | null;
  /** The same slope of the V8 heap in use: the part of a socket that lives in JS objects. */
  heapBytesPerSocket: number | null;
  /** The figure compared with the target: see countedBytes(). */
  countedBytesPerSocket: number | null;
  levels: Level[];
}

export interface ConnectionsResult extends SuiteResult {
  runs: EngineRun[];
  method: string;
}

const METHOD =
  'Each engine is its own process, started with --expose-gc and a SIGUSR2 hook that runs gc(). A warm-up wave of ' +
  'sockets (as many as the first level) is opened and closed, then the ramp opens sockets level by level. At each ' +
  'level: two forced GCs, 600 ms for V8 to return pages, then the median of 5 VmRSS readings from /proc/<pid>/status ' +
  '(and process.memoryUsage() from the hook). Bytes per socket = least-squares slope of RSS over sockets held, ' +
  'across all levels; start-up memory (tsx, PGlite, JIT) lies below the first level and falls out of the slope. ' +
  'The figure counted against the target is the RSS slope, or the V8 heap slope when that is larger (then the ' +
  'sockets filled pages already resident from start-up and RSS under-reads them). Connect figures are over the whole ramp. Clients are lean Socket.IO clients in separate processes.';

type Options = ReturnType<typeof options>;

function options(argv: string[], quick: boolean) {
  const f = suiteFlags(argv, USAGE);
  const counts = f.ints('counts', quick ? [1000] : [10_000, 15_000], 10);
  const max = counts[counts.length - 1]!;
  return {
    counts,
    steps: f.int('steps', quick ? 2 : 6, 0),
    rate: f.num('rate', 2000),
    engineIds: f.subset('engines', ENGINE_IDS, ENGINE_IDS),
    processes: f.int('processes', Math.max(2, Math.ceil(max / PER_PROCESS))),
    // connect() slows down as one source address's ephemeral range (~28,000 ports) fills, TIME_WAIT
    // leftovers of earlier engines included: on 127.0.0.1 alone, the 10k→15k step of every engine had a
    // connect p99 of ~350 ms (the kernel's port search), ~20 ms spread over 127.0.X.1 addresses.
    sources: f.int('sources', Math.ceil(max / PER_SOURCE)),
    room: f.str('room'),
    inflight: f.int('inflight', 200),
    quick,
  };
}

/** The first level: far enough above zero to leave start-up behind, low enough to leave a long slope. */
export function anchorLevel(counts: readonly number[]): number {
  return Math.max(10, Math.round(counts[0]! / 5));
}

/**
 * Socket counts at which RSS is read: the first level, the reported counts, and `steps` even steps up
 * to the largest — one step's jump (a hash table doubling, a fresh heap page) then bends the slope
 * instead of making it.
 */
export function rampLevels(counts: readonly number[], steps: number): number[] {
  const first = anchorLevel(counts);
  const max = counts[counts.length - 1]!;
  const even = Array.from({ length: steps }, (_, k) => Math.round(first + ((k + 1) * (max - first)) / steps));
  return [...new Set([first, ...counts, ...even])].filter((n) => n >= first).sort((a, b) => a - b);
}

/** Adds `count` sockets, spread over the workers with the rate and the handshakes in flight shared out. */
function openMore(workers: Worker[], url: string, count: number, o: Options, shared?: string): Promise<Wave> {
  const share = shares(count, workers.length);
  const addrs = o.sources > 1 ? sourceAddresses(o.sources) : [];
  return openWave(workers, (i) => ({
    url,
    protocol: 'socket.io',
    count: share[i]!,
    rate: (o.rate * share[i]!) / count,
    maxInflight: Math.max(1, Math.round(o.inflight / workers.length)),
    tokens: shared ? [shared] : [],
    rooms: o.room ? [{ name: o.room, key: o.room }] : [],
    localAddresses: addrs,
  }));
}

async function measureEngine(
  id: ConnEngineId,
  workers: Worker[],
  ctx: BenchContext,
  o: Options,
  log: (l: string) => void,
): Promise<EngineRun> {
  const engine = ENGINES[id as EngineId];
  const running = await engine.start(ctx, { NODE_OPTIONS: GC_HOOK_NODE_OPTIONS });
  // One token for all: verifying it is per handshake anyway, and minting thousands adds nothing.
  const shared = engine.auth ? await token({ sub: 'bench-idle', tid: ctx.tenant, role: 'viewer', secret: ctx.secret }) : undefined;
  const anchor = anchorLevel(o.counts);
  const levels: Level[] = [];
  try {
    // Warm-up: JIT, the allocator's arenas and the database connection see sockets before the first reading.
    await openMore(workers, running.url, anchor, o, shared);
    await closeAll(workers);
    await sleep(1000);
    let attempted = 0;
    let connected = 0;
    let seconds = 0;
    // Connect figures are over the whole ramp so far: a step between two levels may be a few sockets.
    const hist = newHistogram();
    const errors: Record<string, number> = {};
    for (const target of rampLevels(o.counts, o.steps)) {
      const wave = await openMore(workers, running.url, target - attempted, o, shared);
      attempted += wave.attempted;
      connected += wave.connected;
      seconds += wave.seconds;
      hist.add(wave.hist);
      for (const [k, v] of Object.entries(wave.errors)) errors[k] = (errors[k] ?? 0) + v;
      const rss = await settledRss(running.pid);
      const lat = summarize(hist);
      const base = levels[0];
      const held = connected - wave.dropped;
      levels.push({
        target,
        attempted,
        connected,
        held,
        connectPerS: Math.round(connected / Math.max(0.001, seconds)),
        connectP50Ms: lat.p50,
        connectP99Ms: lat.p99,
        rssBytes: rss.bytes,
        rssSpreadBytes: rss.spreadBytes,
        heapUsedBytes: rss.heapUsedBytes,
        bytesPerSocket: base && held > base.held ? Math.round((rss.bytes - base.rssBytes) / (held - base.held)) : null,
        errors: { ...errors },
      });
      const heap = rss.heapUsedBytes === null ? '' : `  heap ${(rss.heapUsedBytes / 2 ** 20).toFixed(1)} MiB`;
      log(
        `${id.padEnd(13)} ${held}/${attempted} held  ${levels.at(-1)!.connectPerS}/s  p99 ${lat.p99} ms  RSS ${(rss.bytes / 2 ** 20).toFixed(1)} MiB ±${(rss.spreadBytes / 1024).toFixed(0)} KiB${heap}`,
      );
    }
  } finally {
    await closeAll(workers);
    await running.stop();
  }
  const slope = bytesPerSocket(levels.map((l) => ({ sockets: l.held, rssBytes: l.rssBytes })));
  const heap = levels.every((l) => l.heapUsedBytes !== null)
    ? bytesPerSocket(levels.map((l) => ({ sockets: l.held, rssBytes: l.heapUsedBytes! })))
    : null;
  const round = (x: number | null) => (x === null ? null : Math.round(x));
  return {
    engine: id,
    label: engine.label,
    bytesPerSocket: round(slope),
    heapBytesPerSocket: round(heap),
    countedBytesPerSocket: round(countedBytes(slope, heap)),
    levels,
  };
}

/**
 * RSS slope, unless the V8 heap grew faster: then the sockets filled pages the process had already
 * made resident (Fluxo's start-up leaves hundreds of MiB behind, PGlite's among them), RSS
 * under-reads them, and the heap slope is the honest lower bound.
 */
export function countedBytes(rssSlope: number | null, heapSlope: number | null): number | null {
  if (rssSlope === null) return heapSlope;
  return heapSlope === null ? rssSlope : Math.max(rssSlope, heapSlope);
}

function checkTargets(runs: EngineRun[], quick: boolean): TargetCheck[] {
  const fluxo = runs.find((r) => r.engine === 'fluxo');
  if (!fluxo) return [];
  const checks: TargetCheck[] = [];
  if (fluxo.countedBytesPerSocket !== null) {
    checks.push(check('fluxo', 'memory per idle socket above baseline', fluxo.countedBytesPerSocket / 1024, TARGET_KIB, { unit: 'KiB' }));
  }
  if (!quick) {
    const held = Math.max(0, ...fluxo.levels.map((l) => l.held));
    checks.push(check('fluxo', 'idle sockets held on one node', held, TARGET_SOCKETS, { atLeast: true, unit: 'sockets' }));
  }
  return checks;
}

const kib = (b: number | null) => (b === null ? '-' : (b / 1024).toFixed(2));

/** The first level and the reported counts; every level is in the JSON. */
function shownLevels(r: ConnectionsResult, run: EngineRun): Level[] {
  const counts = r.config.counts as number[];
  return run.levels.filter((l, i) => i === 0 || counts.includes(l.target));
}

function rows(r: ConnectionsResult): string[][] {
  const uws = r.runs.find((x) => x.engine === 'socketio-uws')?.countedBytesPerSocket ?? null;
  return r.runs.flatMap((run) => {
    const shown = shownLevels(r, run);
    return shown.map((l, i) => {
      const last = i === shown.length - 1;
      return [
        run.engine,
        `${l.held.toLocaleString('en')}/${l.attempted.toLocaleString('en')}`,
        String(l.connectPerS),
        String(l.connectP50Ms),
        String(l.connectP99Ms),
        (l.rssBytes / 2 ** 20).toFixed(1),
        i === 0 ? 'first level' : kib(l.bytesPerSocket),
        last ? kib(run.bytesPerSocket) : '',
        last ? kib(run.heapBytesPerSocket) : '',
        last ? kib(run.countedBytesPerSocket) : '',
        last && uws && run.countedBytesPerSocket !== null ? `${(run.countedBytesPerSocket / uws).toFixed(2)}×` : '',
        last ? String(ISSUE_KB[run.engine] ?? '-') : '',
      ];
    });
  });
}

function errorLines(r: ConnectionsResult): string[] {
  return r.runs.flatMap((run) => Object.entries(run.levels.at(-1)?.errors ?? {}).map(([k, v]) => `${run.engine}: ${v} × ${k}`));
}

export const connections: Suite<ConnectionsResult> = {
  name: 'connections',
  summary: 'idle authenticated sockets on one node (10k, 15k): RSS per socket and connect rate, Fluxo vs Socket.IO on ws / on uWS',
  usage: USAGE,
  async run(args) {
    const o = options(args.argv, args.quick);
    const started = Date.now();
    const ctx = benchContext(0);
    const { workers, close } = spawnWorkers(o.processes);
    const runs: EngineRun[] = [];
    try {
      for (const id of o.engineIds) runs.push(await measureEngine(id, workers, ctx, o, args.log));
    } finally {
      close();
    }
    const { engineIds, ...rest } = o;
    const config = { ...rest, engines: engineIds, firstLevel: anchorLevel(o.counts) };
    return { ...envelope('connections', config, started, checkTargets(runs, o.quick)), runs, method: METHOD };
  },
  section: (r) => ({
    title: 'Connections: idle sockets on one node',
    head: [
      'engine',
      'held/attempted',
      'connect/s',
      'p50 ms',
      'p99 ms',
      'RSS MiB',
      'KiB/socket from first level',
      'KiB/socket (RSS slope)',
      'V8 heap slope',
      'KiB/socket counted',
      'vs SIO-uWS',
      'issue KB',
    ],
    rows: rows(r),
    notes: [`How RSS was measured: ${r.method}`, ...errorLines(r).map((l) => `- error: ${l}`)],
  }),
};
