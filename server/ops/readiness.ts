import { withDeadline } from '../store/deadline.js';
import { ReadOnlyPrimary } from '../store/errors.js';
import type { Store } from '../store/store.js';

/** /ready's database probe: its bound, and how long its answer is reused. */
const READY_DB_TIMEOUT_MS = 1000;
const READY_CACHE_MS = 1000;

/**
 * Why the node is not ready, or null: draining, token revocations not read yet, the bus (Redis) not
 * connected or not answering, the primary not answering or read-only (it could take no write). A
 * primary that stops answering (down, or frozen with its connections open) makes the node not ready
 * within READY_DB_TIMEOUT_MS. /ready may be asked often: one database probe at a time, its answer
 * reused for READY_CACHE_MS.
 */
export function createReadiness(deps: {
  draining: () => boolean;
  revocations: { readonly loaded: boolean };
  bus: { notReadyReason(): string | null };
  store: Pick<Store, 'ping'>;
}): { check(): Promise<string | null> } {
  const databaseProbe = reusedFor(READY_CACHE_MS, async () => {
    try {
      await withDeadline(READY_DB_TIMEOUT_MS, () => deps.store.ping());
      return null;
    } catch (err) {
      return err instanceof ReadOnlyPrimary ? 'database read-only' : 'database unreachable';
    }
  });
  return {
    check: async () => {
      if (deps.draining()) return 'draining';
      if (!deps.revocations.loaded) return 'token revocations not loaded';
      return deps.bus.notReadyReason() ?? databaseProbe();
    },
  };
}

/** `probe`, run at most once at a time; its result is reused for `ms` after it settles. */
function reusedFor<T>(ms: number, probe: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: T } | null = null;
  let running: Promise<T> | null = null;
  return () => {
    if (last && Date.now() - last.at < ms) return Promise.resolve(last.value);
    running ??= probe().then(
      (value) => {
        last = { at: Date.now(), value };
        running = null;
        return value;
      },
      (err: unknown) => {
        running = null;
        throw err;
      },
    );
    return running;
  };
}
