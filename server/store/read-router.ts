import { type SQL, sql } from 'drizzle-orm';
import type { Db, StoreLogger } from './db.js';
import { type Deadline, transactionWithin, withDeadline } from './deadline.js';
import { isConnectionError, isRecoveryConflict, isTimeoutError, toStoreError } from './errors.js';
import { rowsOf } from './rows.js';
import type { ReadOptions } from './store.js';

export interface ReadRouterOptions {
  /** See SqlStoreOptions.writeTimeoutMs. Unset: no bound. */
  writeTimeoutMs?: number;
  /** See SqlStoreOptions.replicaTimeoutMs. Unset: no bound. */
  replicaTimeoutMs?: number;
  /** See SqlStoreOptions.replicaMaxLagMs. Unset: lag is not probed. */
  replicaMaxLagMs?: number;
  /** How often each replica's lag is measured. @default 1000 */
  lagProbeMs?: number;
}

/** Replay lag as the replica sees it: 0 when it has replayed all it received. */
const REPLICA_LAG_SQL = sql`SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8 AS lag`;

/** How long a replica that failed with a connection error is skipped. */
const REPLICA_COOLDOWN_MS = 5_000;
/**
 * Bound of partition and key maintenance, which may move or delete many rows: it runs without
 * statement_timeout (see `maintenance`), but not forever.
 */
const MAINTENANCE_TIMEOUT_MS = 10 * 60_000;
/** First statement of a maintenance transaction: lifts the session's statement_timeout for it. */
const NO_STATEMENT_TIMEOUT = sql`SET LOCAL statement_timeout = 0`;

/**
 * Where each database call runs. Writes, and reads that must not lag, go to the primary within the
 * write deadline; reads that may lag go to a healthy replica (round robin), falling back to the
 * primary. Replica health is what failed reads and the lag probe saw.
 */
export class ReadRouter {
  /** Where reads went; for tests and metrics. */
  readonly stats = { primaryReads: 0, replicaReads: 0, replicaFallbacks: 0 };
  private readonly replicaDownUntil: number[];
  /** Seconds of replay lag per replica; null until measured or while unreachable. */
  private readonly replicaLagS: (number | null)[];
  private nextReplica = 0;
  private readonly lagTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly primary: Db,
    private readonly replicas: Db[],
    private readonly opts: ReadRouterOptions,
    private readonly log: StoreLogger,
  ) {
    this.replicaDownUntil = replicas.map(() => 0);
    this.replicaLagS = replicas.map(() => null);
    if (replicas.length > 0 && opts.replicaMaxLagMs !== undefined) {
      void this.probeLag();
      this.lagTimer = setInterval(() => void this.probeLag(), opts.lagProbeMs ?? 1000).unref();
    }
  }

  /**
   * Runs against the primary, within `timeoutMs` (default: writeTimeoutMs); connection failures and
   * timeouts become `store_unavailable`.
   */
  async onPrimary<T>(
    fn: (db: Db, deadline: Deadline | null) => Promise<T>,
    timeoutMs = this.opts.writeTimeoutMs,
    late?: (value: T) => void,
  ): Promise<T> {
    let run: Promise<T> | undefined;
    const start = (deadline: Deadline | null) => {
      run = fn(this.primary, deadline);
      return run;
    };
    try {
      return await (timeoutMs === undefined ? start(null) : withDeadline(timeoutMs, start));
    } catch (err) {
      // The caller is answered with the error; but when the deadline passed while a COMMIT was in
      // flight, the work may succeed after all (deadline.ts), and `late` gets what it did.
      if (late) run?.then(late, () => {});
      throw toStoreError(err);
    }
  }

  /** Runs one statement on the primary and returns its rows. */
  query(q: SQL): Promise<Record<string, unknown>[]> {
    return this.onPrimary(async (db) => rowsOf(await db.execute(q)));
  }

  /**
   * Reads that may lag go to a healthy replica (round robin); `fresh` or no healthy replica sends
   * them to the primary. A replica that fails with a connection error is skipped for a while and
   * the read is retried on the primary.
   */
  async read<T>(opts: ReadOptions | undefined, fn: (db: Db) => Promise<T>): Promise<T> {
    const index = opts?.fresh ? -1 : this.pickReplica();
    const replica = index >= 0 ? this.replicas[index] : undefined;
    if (!replica) {
      this.stats.primaryReads++;
      return this.onPrimary(fn);
    }
    try {
      this.stats.replicaReads++;
      return await this.onReplica(replica, fn);
    } catch (err) {
      if (isRecoveryConflict(err)) {
        // The replica cancelled this read to replay WAL (a long read, a busy primary vacuuming):
        // this read only goes to the primary; the replica stays in use.
        this.log.debug({ replica: index, err: (err as Error).message }, 'replica read cancelled by recovery; reading from the primary');
      } else if (isConnectionError(err) || isTimeoutError(err)) {
        // Unreachable, or silent (frozen, restarting, its pool waiting to reconnect): skip it at once.
        this.replicaDownUntil[index] = Date.now() + REPLICA_COOLDOWN_MS;
        this.log.warn({ replica: index, err: (err as Error).message }, 'replica unreachable; reading from the primary');
      } else {
        throw toStoreError(err);
      }
      this.stats.replicaFallbacks++;
      this.stats.primaryReads++;
      return this.onPrimary(fn);
    }
  }

  /**
   * A partition or key maintenance transaction on the primary, bounded by MAINTENANCE_TIMEOUT_MS
   * rather than writeTimeoutMs and run without statement_timeout (it may move or delete many rows).
   * lock_timeout still applies: it must not queue every writer behind a lock it waits for.
   */
  maintenance<T>(body: (tx: Db) => Promise<T>): Promise<T> {
    return this.onPrimary(
      (db, deadline) =>
        transactionWithin(db, deadline, async (tx) => {
          await tx.execute(NO_STATEMENT_TIMEOUT);
          return body(tx);
        }),
      this.opts.writeTimeoutMs === undefined ? undefined : MAINTENANCE_TIMEOUT_MS,
    );
  }

  /** Last measured replay lag of each replica, for the `db_replica_lag_seconds` gauge. */
  replicaLag(): { replica: number; seconds: number | null }[] {
    return this.replicaLagS.map((seconds, replica) => ({ replica, seconds }));
  }

  close(): void {
    clearInterval(this.lagTimer);
  }

  private onReplica<T>(replica: Db, fn: (db: Db) => Promise<T>): Promise<T> {
    const ms = this.opts.replicaTimeoutMs;
    return ms === undefined ? fn(replica) : withDeadline(ms, () => fn(replica));
  }

  private pickReplica(): number {
    const now = Date.now();
    for (let i = 0; i < this.replicas.length; i++) {
      const index = (this.nextReplica + i) % this.replicas.length;
      const lag = this.replicaLagS[index];
      const lagging = lag != null && this.opts.replicaMaxLagMs !== undefined && lag * 1000 > this.opts.replicaMaxLagMs;
      if ((this.replicaDownUntil[index] ?? 0) <= now && !lagging) {
        this.nextReplica = index + 1;
        return index;
      }
    }
    return -1;
  }

  /** Measures every replica's replay lag; an unreachable or silent one is skipped like a failed read would. */
  private async probeLag(): Promise<void> {
    await Promise.all(
      this.replicas.map(async (db, index) => {
        try {
          const lag = Number(rowsOf(await this.onReplica(db, (r) => r.execute(REPLICA_LAG_SQL)))[0]?.lag ?? 0);
          this.replicaLagS[index] = lag;
        } catch {
          this.replicaLagS[index] = null;
          this.replicaDownUntil[index] = Date.now() + REPLICA_COOLDOWN_MS;
        }
      }),
    );
  }
}
