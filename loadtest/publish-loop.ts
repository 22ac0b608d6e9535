import { sleep } from './setup.js';
import { nowMs } from './stats.js';

export interface PublishLoopOptions {
  /** One publish in `lane` (0 … lanes − 1); resolves when the server answered. */
  publish(lane: number): Promise<void>;
  /** Offered publishes/s over all lanes; 0 = flat out. */
  offered: number;
  /** Publishes in flight at once: each lane waits for its answer before its next one. */
  lanes: number;
  /**
   * Flat out, a lane publishes only while this holds. Without such a bound the server would queue
   * (uWS buffers up to its backpressure limit, then drops), and a run would measure queue growth,
   * not throughput. @default always
   */
  mayPublish?: () => boolean;
  /** Publishes in all, after which the loop ends by itself. @default no end but stop() */
  total?: number;
}

/**
 * Keeps `lanes` publishes going (flat out) or fires on a fixed schedule, each lane on its own
 * however long the answers take, until stopped or `total` were issued.
 */
export function publishLoop(o: PublishLoopOptions): { stop(): Promise<void>; done: Promise<void>; errors(): number } {
  let running = true;
  let errors = 0;
  let issued = 0;
  const total = o.total ?? Number.POSITIVE_INFINITY;
  const mayPublish = o.mayPublish ?? (() => true);
  const gap = o.offered > 0 ? (1000 * o.lanes) / o.offered : 0;
  const t0 = nowMs();
  const done = Promise.all(
    Array.from({ length: o.lanes }, async (_, lane) => {
      let next = t0 + (gap * lane) / o.lanes;
      while (running && issued < total) {
        issued++;
        while (running && !gap && !mayPublish()) await sleep(1);
        if (gap) {
          const wait = next - nowMs();
          if (wait > 0) await sleep(wait);
          next += gap;
        }
        await o.publish(lane).catch(() => void errors++);
      }
    }),
  ).then(() => {});
  return {
    stop: async () => {
      running = false;
      await done;
    },
    done,
    errors: () => errors,
  };
}
