import type { Phase, Window } from './measure.js';

// The rows of the fanout and cross-node suites, two phases (max, rate) per engine: the fields and
// columns both tables have, and how `lost` reads.

/** The `lost` column, explained above either table. */
export const LOST_ABOUT = [
  '`lost` = id gaps seen in the window, which delivery out of id order (concurrent commits on Postgres) shifts',
  'either way; a run fails instead when, once a phase drained, any subscriber missed an event or got one twice.',
];

export const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? a / b : null);
export const times = (x: number | null) => (x === null ? '-' : `${x.toFixed(2)}×`);

/** What a measurement of the fanout and cross-node suites has beside its own CPU figures. */
export interface PhaseRow<E extends string = string> {
  engine: E;
  /** 0 for medians. */
  round: number;
  phase: Phase;
  /** Events/s offered in the `rate` phase (half of the reference engine's max of the round unless --rate); null at max. */
  offeredPerS: number | null;
  deliveriesPerS: number;
  p50Ms: number;
  p99Ms: number;
  publishErrors: number;
  /** Events a client never received although it received a later one (id gaps) during the window. */
  lost: number;
}

/** A measurement's first fields, from one of `maxThenRate`'s windows. */
export const phaseFields = <E extends string>(engine: E, round: number, phase: Phase, w: Window, offered: number) => ({
  engine,
  round,
  phase,
  offeredPerS: phase === 'rate' ? offered : null,
  deliveriesPerS: w.deliveriesPerS,
});

/** The columns the fanout and cross-node tables share: these first, their own, then LATENCY_HEAD. */
export const PHASE_HEAD = ['engine', 'phase', 'offered ev/s', 'deliveries/s'];
export const LATENCY_HEAD = ['p50 ms', 'p99 ms', 'p99 vs sio-uws', 'lost', 'issue baseline'];

export const phaseCells = (m: PhaseRow) => [
  m.engine,
  m.phase,
  // Results committed before issue 13 have no offered rate.
  m.offeredPerS?.toLocaleString('en') ?? '-',
  m.deliveriesPerS.toLocaleString('en'),
];

/** `bare`: the reference engine's row of the same phase; `issue`: issue 4's figures for this engine, shown at max. */
export const latencyCells = (m: PhaseRow, bare: PhaseRow | undefined, issue?: { deliveriesPerS: number; cpuUsPerDelivery: number }) => [
  String(m.p50Ms),
  String(m.p99Ms),
  times(ratio(m.p99Ms, bare?.p99Ms)),
  m.lost.toLocaleString('en'),
  m.phase === 'max' && issue ? `${(issue.deliveriesPerS / 1000).toFixed(0)}k/s, ${issue.cpuUsPerDelivery} µs` : '',
];
