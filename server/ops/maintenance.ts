import type { Store } from '../store/store.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export const DAY_MS = 24 * 60 * 60 * 1000;

type MaintainedStore = Pick<Store, 'ensurePartitions' | 'partitionsAhead' | 'dropExpiredPartitions' | 'pruneIdempotencyKeys'>;

export interface Maintenance {
  /** Runs once now (awaited), then every `everyMs`. */
  start(): Promise<void>;
  stop(): void;
}

/**
 * The store's housekeeping, at start and then daily: next months' event-log partitions made ahead
 * (`db_event_partitions_ahead`), partitions past EVENT_RETENTION_MONTHS dropped, idempotency keys
 * older than a day deleted. A failure is logged and retried at the next run; it never stops the node
 * (the `FluxoPartitionsNotPremade` alert watches the gauge).
 */
export function createMaintenance(deps: {
  store: MaintainedStore;
  metrics: Metrics;
  log: Logger;
  /** EVENT_RETENTION_MONTHS; 0 keeps every partition. */
  retentionMonths: number;
  /** @default DAY_MS */
  everyMs?: number;
}): Maintenance {
  const { store, metrics, log } = deps;
  let timer: NodeJS.Timeout | undefined;

  const run = async () => {
    try {
      // The store logs what it creates.
      await store.ensurePartitions(new Date());
      metrics.partitionsAhead.set(await store.partitionsAhead(new Date()));
      if (deps.retentionMonths > 0) {
        const dropped = await store.dropExpiredPartitions(new Date(), deps.retentionMonths);
        if (dropped.length) log.info({ dropped }, 'event-log partitions dropped by retention');
      }
      // A retry of a transition is answered from its stored result for at least a day, then forgotten.
      const pruned = await store.pruneIdempotencyKeys(new Date(Date.now() - DAY_MS));
      if (pruned > 0) log.info({ pruned }, 'old idempotency keys deleted');
    } catch (err) {
      log.error({ err }, 'partition maintenance failed');
    }
  };

  return {
    start: async () => {
      await run();
      timer ??= setInterval(run, deps.everyMs ?? DAY_MS).unref();
    },
    stop: () => clearInterval(timer),
  };
}
