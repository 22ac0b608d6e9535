/**
 * Live counts with a ceiling, per key (a client IP, a user), on this node: Engine.IO sessions per
 * IP, sockets per user and per IP. Unlike the rate budgets these are not shared through Redis: a
 * session or a socket lives on one node, and its node is the one that must not run out of memory
 * or file descriptors. Keys at zero are dropped, so the map holds only keys with something open.
 */
export class LiveCounts {
  private readonly counts = new Map<string, number>();

  constructor(readonly max: number) {}

  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Whether `key` is at its ceiling. */
  full(key: string): boolean {
    return this.count(key) >= this.max;
  }

  /** Takes a slot for `key`; false (and nothing taken) when it is at its ceiling. */
  acquire(key: string): boolean {
    const n = this.count(key);
    if (n >= this.max) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  /** Counts one more for `key` even at the ceiling (something already opened). */
  add(key: string): void {
    this.counts.set(key, this.count(key) + 1);
  }

  release(key: string): void {
    const n = this.count(key);
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }

  /** Keys with something open (for tests and metrics). */
  get size(): number {
    return this.counts.size;
  }
}
