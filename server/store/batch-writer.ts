import type { FluxoEvent } from '../../shared/protocol.js';
import { AppError } from '../errors.js';
import { commitBatch, type WriteItem, type WriteResult } from './batch-commit.js';
import type { StoreLogger } from './db.js';
import { DeadlineExceeded, transactionWithin, withDeadline } from './deadline.js';
import { isClaimConflict, toStoreError } from './errors.js';
import { GroupCommit, type GroupCommitOptions, type Outcome } from './group-commit.js';
import type { ReadRouter } from './read-router.js';

/** `p`, or store_unavailable after `ms` if it has not settled by then. */
function answerWithin<T>(p: Promise<T>, ms: number): Promise<T> {
  return withDeadline(ms, () => p).catch((err: unknown) => {
    throw err instanceof DeadlineExceeded ? toStoreError(err) : err;
  });
}

/** A write whose caller was answered store_unavailable and which committed after all, with what it wrote. */
export type LateCommitListener = (tenant: string, events: FluxoEvent[]) => void;

/**
 * The write path of transitions and custom events: writes queue for group commit, each batch
 * commits in one transaction on the primary (batch-commit.ts), and each caller is answered with
 * its own item's outcome, only once its batch has committed or failed.
 */
export class BatchWriter {
  private readonly group: GroupCommit<WriteItem, WriteResult>;
  /** When each write submitted must be answered (writeTimeoutMs after submit). */
  private readonly deadlines = new WeakMap<WriteItem, number>();

  constructor(
    private readonly router: ReadRouter,
    private readonly log: StoreLogger,
    /** See SqlStoreOptions.writeTimeoutMs. Unset: no bound. */
    private readonly writeTimeoutMs: number | undefined,
    opts: GroupCommitOptions,
    /** Gets the events of writes answered store_unavailable that committed after all (Store.onLateCommit). */
    private readonly onLate: LateCommitListener,
  ) {
    this.group = new GroupCommit((items) => this.commit(items), opts);
  }

  submit(item: WriteItem): Promise<WriteResult> {
    const ms = this.writeTimeoutMs;
    if (ms === undefined) return this.group.submit(item);
    // Answered by its deadline even while it still waits for a batch: `commit` then leaves it out
    // (never applied), or its batch, bound by the earliest deadline in it, rolls back (deadline.ts).
    this.deadlines.set(item, Date.now() + ms);
    return answerWithin(this.group.submit(item), ms);
  }

  private committedLate(item: WriteItem, result: WriteResult): void {
    const tenant = item.kind === 'transition' ? item.actor.tenant : item.tenant;
    this.onLate(tenant, result.kind === 'transition' ? [result.result.event] : result.events);
  }

  /** Batches committed and the writes they carried, for the batch-size metric. */
  get stats(): { batches: number; items: number } {
    return this.group.stats;
  }

  /**
   * One transaction for the batch. If it throws for another reason than an unreachable database
   * (one item's odd input, a deadlock between nodes), every item is retried alone so one bad write
   * cannot fail the others.
   */
  private async commit(items: WriteItem[]): Promise<Outcome<WriteResult>[]> {
    const now = Date.now();
    const due = items.map((item) => this.deadlines.get(item));
    const late = due.map((d) => d !== undefined && d <= now);
    if (late.includes(true)) {
      // Their callers were answered store_unavailable while they waited: leave them out, unapplied.
      const outcomes = await this.commit(items.filter((_, i) => !late[i]));
      return items.map((_, i) => (late[i] ? { ok: false, error: toStoreError(new DeadlineExceeded(0)) } : outcomes.shift()!));
    }
    if (items.length === 0) return [];
    const deadline = due.every((d) => d !== undefined) ? Math.min(...(due as number[])) - now : undefined;
    try {
      return await this.router.onPrimary(
        async (db, d) => {
          const batch = await transactionWithin(db, d, (tx) => commitBatch(tx, items));
          // The last statements may have been answered after the COMMIT went out; if one failed, it rolled back.
          await batch.written;
          return batch.outcomes;
        },
        deadline,
        // Every item is answered below; a batch that commits after all still has its events sent.
        (outcomes) => {
          for (const [i, o] of outcomes.entries()) if (o.ok) this.committedLate(items[i]!, o.value);
        },
      );
    } catch (err) {
      // Someone claimed one of these ids without the claim lock and has not stored its result
      // (batch-commit.ts, STORE_RESULTS): alone, that write is in progress elsewhere.
      if (items.length === 1 && isClaimConflict(err)) return [{ ok: false, error: new AppError('request_in_progress') }];
      const error = toStoreError(err);
      const unavailable = error instanceof AppError && error.code === 'store_unavailable';
      if (items.length === 1 || unavailable) return items.map(() => ({ ok: false, error }));
      this.log.warn({ err: (err as Error).message, items: items.length }, 'batch commit failed; retrying its writes one by one');
      const outcomes: Outcome<WriteResult>[] = [];
      for (const item of items) outcomes.push(...(await this.commit([item])));
      return outcomes;
    }
  }
}
