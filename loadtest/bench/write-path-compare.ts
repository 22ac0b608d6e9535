import { check, type TargetCheck } from './suite.js';
import type { WritePathLevel } from './write-path-measure.js';

/**
 * Fluxo against a baseline measured in the same run (issue 13, item 3): ratios, the targets, and
 * the guarantee both must keep for a ratio to mean anything — every acked transition in the log
 * and at every subscriber.
 */

/** Fluxo's transitions/s (persisted and fanned out) over the tutorial stack's, at least. */
export const TARGET_THROUGHPUT_RATIO = 4;
/** Fluxo's server CPU per transition over the tutorial stack's, at most. */
export const TARGET_CPU_RATIO = 0.25;

export interface BaselineComparison {
  baseline: string;
  /** Fluxo / baseline, transitions/s acked and received by every subscriber; null when the baseline had none. */
  throughputRatio: number | null;
  /** Fluxo / baseline, µs of server CPU per transition; null when either has no figure. */
  cpuRatio: number | null;
  /** The parts whose CPU both figures sum (every app node counts as `node`): the same on both sides. */
  cpuParts: string[];
}

/** Acked transitions the log lacks, and deliveries of acked transitions a subscriber lacks (summed over subscribers). */
export function lostAcked(l: WritePathLevel): { notInLog: number; notDelivered: number } {
  return {
    notInLog: l.persisted.acked - l.persisted.ackedInLog,
    notDelivered: l.subscribers.reduce((n, s) => n + s.missing, 0),
  };
}

/** Met when something was acked and nothing acked is missing from the log or from any subscriber. */
export function guaranteeCheck(subject: string, l: WritePathLevel): TargetCheck {
  const { notInLog, notDelivered } = lostAcked(l);
  const target = 'every acked transition in the log and at every subscriber';
  // Nothing acked proves nothing: a run that committed nothing must not pass by having lost nothing.
  if (l.persisted.acked === 0) return { subject, target, actual: 'nothing acked', met: false };
  const met = notInLog === 0 && notDelivered === 0;
  return {
    subject,
    target,
    actual: met ? `all ${l.persisted.acked.toLocaleString('en')}` : `${notInLog} not in the log, ${notDelivered} deliveries missing`,
    met,
    ...(met ? {} : { gap: `${notInLog + notDelivered} missing` }),
  };
}

/** The CPU parts of a level with its app nodes named `node`, sorted: what a fair comparison needs equal. */
export function cpuParts(l: WritePathLevel): string[] {
  const nodes = new Set(l.perNode.map((p) => p.node));
  return [...new Set(Object.keys(l.cpu.corePct).map((k) => (nodes.has(k) ? 'node' : k)))].sort();
}

const ratio = (a: number, b: number) => (a > 0 && b > 0 ? Math.round((a / b) * 100) / 100 : null);

/**
 * The ratios of `fluxo` (one node) to `baseline` and their targets. Throws when the two CPU
 * figures do not sum the same parts: such a ratio would compare different things.
 */
export function compareWithBaseline(
  fluxo: WritePathLevel,
  baseline: WritePathLevel,
  name: string,
): { comparison: BaselineComparison; targets: TargetCheck[] } {
  const parts = cpuParts(fluxo);
  const theirs = cpuParts(baseline);
  if (parts.join() !== theirs.join())
    throw new Error(`CPU counted over different parts: fluxo ${parts.join(', ')}; ${name} ${theirs.join(', ')}`);
  const comparison: BaselineComparison = {
    baseline: name,
    throughputRatio: baseline.fannedOutPerS > 0 ? Math.round((fluxo.fannedOutPerS / baseline.fannedOutPerS) * 100) / 100 : null,
    cpuRatio: ratio(fluxo.cpu.usPerTransition, baseline.cpu.usPerTransition),
    cpuParts: parts,
  };
  const subject = `fluxo ${fluxo.nodes} node${fluxo.nodes > 1 ? 's' : ''} / ${name}`;
  const missing = (target: string, why: string): TargetCheck => ({ subject, target, actual: why, met: false });
  return {
    comparison,
    targets: [
      comparison.throughputRatio === null
        ? missing(`transitions/s ratio ≥ ${TARGET_THROUGHPUT_RATIO.toFixed(2)}×`, `${name} delivered nothing`)
        : check(subject, 'transitions/s ratio', comparison.throughputRatio, TARGET_THROUGHPUT_RATIO, { atLeast: true }),
      comparison.cpuRatio === null
        ? missing(`CPU per transition ratio ≤ ${TARGET_CPU_RATIO.toFixed(2)}×`, 'no CPU figure on one side')
        : check(subject, 'CPU per transition ratio', comparison.cpuRatio, TARGET_CPU_RATIO),
    ],
  };
}
