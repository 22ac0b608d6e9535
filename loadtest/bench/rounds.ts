import { spawnWorkers, type Worker } from '../clients.js';
import { type LiveServers, onInterrupt } from './engines.js';

/** A suite that measures engines in rounds over one pool of client processes. */
export interface RoundsSpec<E, M> {
  processes: number;
  rounds: number;
  /** In the order of each round. */
  engines: readonly E[];
  /** Servers the measurements start, tracked so that an interrupt stops them too. */
  live: LiveServers;
  /** Starts what every engine runs on (Postgres, Redis), once. */
  setUp?: () => Promise<void>;
  /** Stops what `setUp` started, after the servers and the client processes. */
  tearDown?: () => Promise<void>;
  measure(engine: E, workers: Worker[], round: number): Promise<M[]>;
  /** The log line of one measurement. */
  line(m: M): string;
}

/**
 * The frame of the fanout, cross-node and fanout-10k suites: client processes spawned once, each
 * engine measured once per round in alternation — ratios taken within one run hold on a noisy
 * machine where absolute figures do not — and whatever was started stopped on the way out, on
 * Ctrl-C or SIGTERM too. Logs and returns every measurement.
 */
export async function measureInRounds<E, M>(spec: RoundsSpec<E, M>, log: (line: string) => void): Promise<M[]> {
  const { workers, close } = spawnWorkers(spec.processes);
  const cleanup = async () => {
    await spec.live.stopAll();
    close();
    await spec.tearDown?.();
  };
  const offInterrupt = onInterrupt(cleanup);
  const all: M[] = [];
  try {
    await spec.setUp?.();
    for (let round = 1; round <= spec.rounds; round++) {
      for (const engine of spec.engines) {
        for (const m of await spec.measure(engine, workers, round)) {
          all.push(m);
          log(spec.line(m));
        }
      }
    }
    return all;
  } finally {
    offInterrupt();
    await cleanup();
  }
}
