import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { token } from '../../scripts/topology/tokens.js';
import type { Ack, SubscribeResult } from '../../shared/protocol.js';
import { connect } from '../../shared/sdk/index.js';
import { LeanClient } from '../lean-client.js';
import { publishEvents } from '../publishers.js';
import { nowMs } from '../stats.js';
import { type BenchContext, benchContext, cpuProfileNodeOptions, ENGINES, onInterrupt, type RunningEngine } from './engines.js';
import { suiteFlags } from './flags.js';
import { check, envelope, median, type Suite, type SuiteResult, type TargetCheck } from './suite.js';

/**
 * Replay on reconnect: a client that missed N events of a room subscribes with `after` and is timed
 * until the last of them arrived. The server answers at most 1,000 per subscribe with `truncated`;
 * the SDK subscribes again from the last id until the replay is complete, and so does the lean
 * client here (the same protocol without socket.io-client and the SDK's ordering).
 */
const STORES = ['pglite', 'postgres'] as const;
type StoreId = (typeof STORES)[number];
const CLIENTS = ['sdk', 'lean'] as const;
type ClientId = (typeof CLIENTS)[number];

const USAGE = `replay [options]
  --events a,b       missed events per reconnect (default 1000,10000; quick 1000,2000)
  --reps N           reconnects timed per case; p50 and max are reported (default 7; quick 2)
  --stores a,b       ${STORES.join(', ')} (default both when Postgres 15 is installed; quick pglite)
  --clients a,b      sdk (shared/sdk on socket.io-client), lean (loadtest/lean-client.ts) (default both)
  --cpu-prof DIR     run the server with --cpu-prof, profiles written to DIR`;

const TARGET_EVENTS = 10_000;
const TARGET_MS = 200;
const PG_BIN = '/usr/lib/postgresql/15/bin/initdb';
/** Publish requests in flight while preloading: enough to keep the server's event log writing. */
const PRELOAD_INFLIGHT = 8;
/** Events per batch publish, well under the 64 KiB body limit with ~100-byte events. */
const BATCH = 200;

export interface ReplayCase {
  store: StoreId;
  client: ClientId;
  events: number;
  /** Subscribe to last event received, per reconnect. */
  timesMs: number[];
  p50Ms: number;
  maxMs: number;
  /** Replayed events per second at the median. */
  eventsPerS: number;
}

export interface ReplayResult extends SuiteResult {
  cases: ReplayCase[];
  /** How the events were stored before timing, per store. */
  preload: { store: StoreId; events: number; perS: number; batched: boolean }[];
}

type Options = ReturnType<typeof options>;

function options(argv: string[], quick: boolean) {
  const f = suiteFlags(argv, USAGE);
  return {
    events: f.ints('events', quick ? [1000, 2000] : [1000, TARGET_EVENTS]),
    reps: f.int('reps', quick ? 2 : 7),
    stores: f.subset('stores', STORES, quick || !existsSync(PG_BIN) ? ['pglite'] : STORES),
    clients: f.subset('clients', CLIENTS, CLIENTS),
    cpuProfDir: f.str('cpu-prof'),
    quick,
  };
}

/**
 * Stores `count` events of the tenant room through the publish API; returns their ids. Uses the
 * batch form `{ events: [...] }` when the server takes it, single events otherwise.
 */
async function preload(running: RunningEngine, ctx: BenchContext, count: number): Promise<{ ids: number[]; batched: boolean }> {
  const one = { tenant: ctx.tenant, room: 'tenant', type: 'bench', data: ctx.payload };
  const publish = (n: number) =>
    publishEvents(
      running.url,
      ctx.publishKey,
      Array.from({ length: n }, () => one),
    );
  const ids = await publish(2).catch((): number[] => []);
  const batched = ids.length === 2;
  let left = count - ids.length;
  const take = () => {
    const n = Math.min(left, batched ? BATCH : 1);
    left -= n;
    return n;
  };
  await Promise.all(
    Array.from({ length: PRELOAD_INFLIGHT }, async () => {
      for (let n = take(); n > 0; n = take()) ids.push(...(await publish(n)));
    }),
  );
  return { ids: ids.sort((a, b) => a - b), batched };
}

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]);
}

/** The SDK, as an app uses it: connected first, then subscribe with `after`; timed to the n-th event delivered. */
async function replaySdk(url: string, token: string, after: number, n: number): Promise<number> {
  const client = connect({ url, token, transports: ['websocket'] });
  try {
    await timeout(client.whenConnected(), 10_000, 'sdk connect');
    let got = 0;
    let t1 = 0;
    const t0 = nowMs();
    const all = new Promise<void>((resolve, reject) => {
      const stop = client.subscribe(
        'tenant',
        () => {
          if (++got === n) {
            t1 = nowMs();
            resolve();
          }
        },
        { after },
      );
      stop.ready.catch(reject);
    });
    await timeout(all, 60_000, `sdk replay of ${n}`);
    return t1 - t0;
  } finally {
    client.close();
  }
}

/** The same paging over the lean client: subscribe again from the last id while `truncated`. */
async function replayLean(url: string, token: string, after: number, n: number): Promise<number> {
  const c = await LeanClient.connect({ url, token });
  try {
    let got = 0;
    let from = after;
    const t0 = nowMs();
    for (;;) {
      const ack = await c.request<Ack<SubscribeResult>>('subscribe', { room: 'tenant', after: from }, 60_000);
      if ('error' in ack) throw new Error(`subscribe: ${ack.error.code}`);
      const { events, truncated } = ack.data;
      got += events.length;
      if (!truncated || events.length === 0) break;
      from = events[events.length - 1]!.id;
    }
    const ms = nowMs() - t0;
    if (got !== n) throw new Error(`lean replay: ${got} events, expected ${n}`);
    return ms;
  } finally {
    c.terminate();
  }
}

async function measureStore(
  store: StoreId,
  o: Options,
  log: (l: string) => void,
): Promise<{ cases: ReplayCase[]; preload: ReplayResult['preload'][number] }> {
  const ctx = benchContext();
  let pg: PostgresHandle | undefined;
  let running: RunningEngine | undefined;
  // Postgres (started through pg_ctl, detached) would outlive a Ctrl-C, as in the other suites.
  const offInterrupt = onInterrupt(async () => {
    await running?.stop();
    await pg?.stop();
  });
  try {
    const env: Record<string, string> = {};
    if (store === 'postgres') {
      pg = await startPostgres();
      Object.assign(env, { DATABASE_URL: pg.url, MIGRATE_ON_START: 'true' });
    }
    if (o.cpuProfDir) {
      mkdirSync(o.cpuProfDir, { recursive: true });
      env.NODE_OPTIONS = cpuProfileNodeOptions(resolve(o.cpuProfDir));
    }
    running = await ENGINES.fluxo.start(ctx, env);
    const max = o.events[o.events.length - 1]!;
    const t0 = nowMs();
    const { ids, batched } = await preload(running, ctx, max);
    const perS = Math.round(max / ((nowMs() - t0) / 1000));
    log(`${store}: ${max} events stored at ${perS}/s${batched ? ' (batch publish)' : ''}`);
    const viewer = await token({ sub: 'bench-replay', tid: ctx.tenant, role: 'viewer', secret: ctx.secret });
    const cases: ReplayCase[] = [];
    for (const n of o.events) {
      // The client last saw the event just before the n newest.
      const after = ids[ids.length - n - 1] ?? ids[0]! - 1;
      for (const client of o.clients) {
        const replay = client === 'sdk' ? replaySdk : replayLean;
        // One untimed reconnect first: the JIT and the database's caches warm up on the same path.
        await replay(running.url, viewer, after, n);
        const timesMs: number[] = [];
        for (let r = 0; r < o.reps; r++) timesMs.push(Math.round((await replay(running.url, viewer, after, n)) * 10) / 10);
        const p50 = median(timesMs);
        cases.push({
          store,
          client,
          events: n,
          timesMs,
          p50Ms: p50,
          maxMs: Math.max(...timesMs),
          eventsPerS: Math.round(n / (p50 / 1000)),
        });
        log(`${store} ${client.padEnd(4)} ${String(n).padStart(6)} events: p50 ${p50} ms  max ${Math.max(...timesMs)} ms`);
      }
    }
    return { cases, preload: { store, events: max, perS, batched } };
  } finally {
    offInterrupt();
    await running?.stop();
    await pg?.stop();
  }
}

function checkTargets(cases: ReplayCase[]): TargetCheck[] {
  return cases
    .filter((c) => c.events === TARGET_EVENTS)
    .map((c) =>
      check(`fluxo ${c.store}, ${c.client} client`, `replay of ${TARGET_EVENTS.toLocaleString('en')} events, p50`, c.p50Ms, TARGET_MS, {
        unit: 'ms',
      }),
    );
}

const rows = (r: ReplayResult) =>
  r.cases.map((c) => [
    c.store,
    c.client,
    c.events.toLocaleString('en'),
    String(c.p50Ms),
    String(c.maxMs),
    c.eventsPerS.toLocaleString('en'),
    String(c.timesMs.length),
  ]);
const preloadLine = (r: ReplayResult) =>
  `Preloaded through POST /api/publish: ${r.preload.map((p) => `${p.store} ${p.events.toLocaleString('en')} events at ${p.perS.toLocaleString('en')}/s${p.batched ? ' (batched)' : ''}`).join('; ')}.`;

export const replay: Suite<ReplayResult> = {
  name: 'replay',
  summary: 'a reconnecting client catches up on 1,000 and 10,000 missed events (PGlite and Postgres)',
  usage: USAGE,
  async run(args) {
    const o = options(args.argv, args.quick);
    const started = Date.now();
    const cases: ReplayCase[] = [];
    const loads: ReplayResult['preload'] = [];
    for (const store of o.stores) {
      const r = await measureStore(store, o, args.log);
      cases.push(...r.cases);
      loads.push(r.preload);
    }
    const { cpuProfDir: _dir, ...config } = o;
    return { ...envelope('replay', config, started, checkTargets(cases)), cases, preload: loads };
  },
  section: (r) => ({
    title: 'Replay on reconnect',
    about: [
      'Timed from the subscribe with `after` to the last missed event received, one fresh connection per reconnect ' +
        '(connected before the clock starts), after one untimed warm-up reconnect. The server returns at most 1,000 ' +
        'events per subscribe ack (`truncated`); both clients subscribe again from the last id until done.',
    ],
    head: ['store', 'client', 'events', 'p50 ms', 'max ms', 'events/s at p50', 'reconnects'],
    rows: rows(r),
    left: 2,
    notes: [preloadLine(r)],
  }),
};
