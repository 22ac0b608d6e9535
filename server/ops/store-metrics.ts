import type { Store } from '../store/store.js';
import type { Metrics } from './metrics.js';

/**
 * Copies what the store measures by itself into the metrics, every `everyMs`: each replica's state
 * (`db_replica_up`, `db_replica_lag_seconds`) and the group commits since the last poll
 * (`db_write_batches_total`, `db_batched_writes_total`). Returns the function that stops it.
 */
export function pollStoreMetrics(store: Pick<Store, 'replicaLag' | 'commitStats'>, metrics: Metrics, everyMs = 1000): () => void {
  let committed = { batches: 0, items: 0 };
  const timer = setInterval(() => {
    // An unreachable replica is `db_replica_up 0` and has no lag sample (not a made-up number that
    // alerts and graphs would have to know to ignore); it gets one again once it answers.
    for (const r of store.replicaLag()) {
      const replica = String(r.replica);
      metrics.replicaUp.set({ replica }, r.seconds === null ? 0 : 1);
      if (r.seconds === null) metrics.replicaLag.remove({ replica });
      else metrics.replicaLag.set({ replica }, r.seconds);
    }
    const now = { ...store.commitStats };
    metrics.writeBatches.inc(now.batches - committed.batches);
    metrics.batchedWrites.inc(now.items - committed.items);
    committed = now;
  }, everyMs).unref();
  return () => clearInterval(timer);
}
