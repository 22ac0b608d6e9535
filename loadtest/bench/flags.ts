import { parseArgs } from 'node:util';

/**
 * A suite's own flags, each `--name value`: when every suite runs, all flags reach every suite, so
 * a flag another suite owns is no error here. `flags`: their names, or the suite's usage text, whose
 * `--name`s they are — so that a flag parsed is a flag documented.
 */
export function suiteFlags(argv: string[], flags: readonly string[] | string) {
  const names = typeof flags === 'string' ? [...flags.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!) : flags;
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: Object.fromEntries(names.map((k) => [k, { type: 'string' as const }])),
  });
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const number = (k: string, dflt: number, ok: (v: number) => boolean, what: string) => {
    const v = Number(str(k) ?? dflt);
    if (!ok(v)) throw new Error(`--${k}: ${what}`);
    return v;
  };
  return {
    str,
    /** A positive number. */
    num: (k: string, dflt: number) => number(k, dflt, (v) => Number.isFinite(v) && v > 0, 'a positive number'),
    /** An integer ≥ `min`. */
    int: (k: string, dflt: number, min = 1) => number(k, dflt, (v) => Number.isInteger(v) && v >= min, `an integer ≥ ${min}`),
    /** A comma-separated list of integers ≥ `min`, ascending and without repeats. */
    ints(k: string, dflt: number[], min = 1): number[] {
      const xs = str(k)?.split(',').map(Number) ?? dflt;
      if (xs.some((x) => !Number.isInteger(x) || x < min)) throw new Error(`--${k}: integers ≥ ${min}`);
      return [...new Set(xs)].sort((a, b) => a - b);
    },
    /** One of `all`. */
    one<T extends string>(k: string, all: readonly T[], dflt: T): T {
      const x = (str(k) ?? dflt) as T;
      if (!all.includes(x)) throw new Error(`--${k}: one of ${all.join(', ')}`);
      return x;
    },
    /** A comma-separated subset of `all`. */
    subset<T extends string>(k: string, all: readonly T[], dflt: readonly T[]): T[] {
      const xs = (str(k)?.split(',') ?? [...dflt]) as T[];
      for (const x of xs) if (!all.includes(x)) throw new Error(`--${k}: unknown ${x} (one of ${all.join(', ')})`);
      return xs;
    },
  };
}

/** Flags the flat-out / fixed-rate fan-out suites share (fanout, cross-node). */
export interface FanoutOptions<E extends string> {
  quick: boolean;
  subscribers: number;
  rounds: number;
  windowS: number;
  /** Events/s of the fixed-rate phase; unset: half the bare engine's maximum of the same round (see RateOfRound). */
  rate: number | undefined;
  inflight: number;
  processes: number;
  batch: number;
  backlog: number;
  engineIds: E[];
  /** The suite's own string flags, as given. */
  extra: Record<string, string | undefined>;
}

export function fanoutUsage(engines: string[]): string {
  return `  --subscribers N      subscribers in the one room (default 1000; quick 100)
  --rounds N           alternations of all engines; the median is reported (default 3; quick 1)
  --window S           measured seconds per phase (default 3; quick 1)
  --rate N             offered events/s of the fixed-rate phase (default: half of what bare Socket.IO
                       on uWS delivered flat out in the same round; targets on p99 need the default)
  --engines a,b        subset of ${engines.join(', ')}
  --inflight N         publish requests in flight, flat out (default 4)
  --processes N        client processes (default 2)
  --batch N            events per publish request, at either rate (default 2000/subscribers, at least 1)
  --backlog N          flat out: events per subscriber published but not yet received (default 50)`;
}

export function fanoutOptions<E extends string>(
  argv: string[],
  quick: boolean,
  engines: { all: readonly E[]; quick?: readonly E[] },
  extraFlags: string[] = [],
): FanoutOptions<E> {
  const flags = ['subscribers', 'rounds', 'window', 'rate', 'engines', 'inflight', 'processes', 'batch', 'backlog'];
  const f = suiteFlags(argv, [...flags, ...extraFlags]);
  const subscribers = f.num('subscribers', quick ? 100 : 1000);
  return {
    quick,
    subscribers,
    rounds: f.num('rounds', quick ? 1 : 3),
    windowS: f.num('window', quick ? 1 : 3),
    rate: f.str('rate') === undefined ? undefined : f.num('rate', 1),
    inflight: f.num('inflight', 4),
    processes: f.num('processes', 2),
    // The publisher must outrun the server (flat out) and stay cheap (at the fixed rate, half of
    // bare's maximum): with few subscribers one HTTP request per event would measure the publisher
    // instead. It does not change the per-delivery work.
    batch: f.num('batch', Math.max(1, Math.round(2000 / subscribers))),
    backlog: f.num('backlog', 50),
    engineIds: f.subset('engines', engines.all, (quick && engines.quick) || engines.all),
    extra: Object.fromEntries(extraFlags.map((k) => [k, f.str(k)])),
  };
}

/** The `config` of a fanout or cross-node result: the flags as parsed, and what set the fixed rate. */
export function fanoutConfig<E extends string>(o: FanoutOptions<E>): Record<string, unknown> {
  const { engineIds, extra: _extra, ...rest } = o;
  return { ...rest, rate: o.rate ?? 'half of bare max, per round', payloadBytes: 100, engines: engineIds };
}
