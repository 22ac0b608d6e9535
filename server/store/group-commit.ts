/** What one item of a batch came to: its value, or the error that item alone gets. */
export type Outcome<O> = { ok: true; value: O } | { ok: false; error: unknown };

export interface GroupCommitOptions {
  /** Items per batch, at most (one item is never split). @default 256 */
  maxBatch?: number;
  /** Batches committing at once. @default 1 */
  maxInFlight?: number;
}

/**
 * Group commit: writes that arrive while a batch is committing wait and go together in the next
 * one, so under load one transaction (one fsync, a handful of statements) carries many writes,
 * and alone a write waits for nothing. Each caller's promise settles only after its batch
 * committed (or failed) — never earlier.
 */
export class GroupCommit<I, O> {
  private queue: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  /** Batches committed and items they carried, for metrics. */
  readonly stats = { batches: 0, items: 0 };

  constructor(
    private readonly commit: (items: I[]) => Promise<Outcome<O>[]>,
    opts: GroupCommitOptions = {},
  ) {
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 1);
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      // Writes issued in the same tick (one HTTP batch, one burst of socket events) share a batch.
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Items waiting for a batch (not counting those committing). */
  get waiting(): number {
    return this.queue.length;
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      void this.run(batch);
    }
  }

  private async run(batch: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[]): Promise<void> {
    let outcomes: Outcome<O>[];
    try {
      outcomes = await this.commit(batch.map((b) => b.item));
    } catch (err) {
      outcomes = batch.map(() => ({ ok: false, error: err }));
    }
    this.stats.batches++;
    this.stats.items += batch.length;
    batch.forEach((b, i) => {
      const o = outcomes[i] ?? { ok: false, error: new Error('group commit: no outcome for an item') };
      if (o.ok) b.resolve(o.value);
      else b.reject(o.error);
    });
    this.inFlight--;
    this.pump();
  }
}
