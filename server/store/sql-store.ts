import { type SQL, sql } from 'drizzle-orm';
import type { FluxoEvent, Process, RoomPosition, TransitionRequest, TransitionResult, Workflow } from '../../shared/protocol.js';
import { parseRoom } from '../../shared/rooms.js';
import type { CreateProcessInput, CreateWorkflowInput, ListProcessesQuery } from '../../shared/schemas.js';
import { AppError } from '../errors.js';
import type { ResolvedAppend } from './batch-commit.js';
import { BatchWriter, type LateCommitListener } from './batch-writer.js';
import { type Db, type StoreLogger, silentLogger } from './db.js';
import { transactionWithin } from './deadline.js';
import { isMissingSchemaError, ReadOnlyPrimary, toStoreError } from './errors.js';
import { type MigrationClient, runMigrations } from './migrator.js';
import { dropExpiredPartitions, ensurePartitions, partitionsAhead } from './partitions.js';
import {
  deleteExpiredRevocations,
  deleteIdempotencyKeysBefore,
  inRecovery,
  insertProcess,
  insertWorkflow,
  processById,
  processPage,
  recordRevocation,
  revocationsSince,
  roomEventsAfter,
  roomEventsBefore,
  roomHead,
  roomHeadsOf,
  workflowById,
  workflowList,
} from './queries.js';
import { ReadRouter } from './read-router.js';
import type { Actor, CustomEventInput, EventPage, Page, ReadOptions, RoomHead, RoomKey, Store } from './store.js';
import { endStuckSessions } from './stuck-sessions.js';

// test/integration/fail-fast-postgres.test.ts imports the handle type from here.
export type { Db } from './db.js';

/** What a driver module hands to SqlStore. */
export interface Backend {
  kind: 'pglite' | 'postgres';
  primary: Db;
  replicas: Db[];
  migrations: MigrationClient;
  close(): Promise<void>;
}

export interface SqlStoreOptions {
  logger?: StoreLogger;
  /** Directory of the SQL migrations. @default <repo>/migrations */
  migrationsDir?: string;
  /**
   * A replica whose replay lags more than this is skipped (reads go to the primary). Unset: lag is
   * not probed.
   */
  replicaMaxLagMs?: number;
  /** How often each replica's lag is measured. @default 1000 */
  lagProbeMs?: number;
  /**
   * Write batches committing at once (group commit). One suits PGlite, which runs one query at a
   * time anyway; a Postgres pool can overlap a commit with the next batch's statements. @default 1
   */
  commitConcurrency?: number;
  /** Writes per batch, at most. @default 256 */
  maxBatch?: number;
  /**
   * Every call on the primary answers within this many ms: past it the caller gets
   * `store_unavailable` (see deadline.ts for what may still happen to the work). A write submitted
   * to group commit counts from its submission, waiting for its batch included. Unset: no bound.
   */
  writeTimeoutMs?: number;
  /**
   * A replica read (or lag probe) not answered within this many ms goes to the primary and the
   * replica is skipped as if unreachable. Unset: no bound.
   */
  replicaTimeoutMs?: number;
  /**
   * Postgres only: sessions of any node left mid-statement, waiting for their client, for longer
   * than this are ended (see stuck-sessions.ts). Unset or 0: not done.
   */
  stuckSessionMs?: number;
  /**
   * A process's data as JSON, once a transition has merged its `data` into it, at most (else
   * `payload_too_large`): each transition may add keys, and the whole row is rewritten by every
   * later one. Unset: no bound.
   */
  maxProcessDataBytes?: number;
}

/** Expired revocations are deleted at most this often (on revokeToken). */
const PRUNE_EVERY_MS = 60_000;

/**
 * The one Store implementation over drizzle, for PGlite and Postgres (+ streaming replicas): picks
 * where each call runs (read-router.ts) and what runs there (queries.ts, partitions.ts, group
 * commit through batch-writer.ts).
 *
 * Event ids: each writing transaction takes the next id of its tenant with an upsert on
 * `tenant_cursors` as its LAST step before inserting the event, so the row lock is held only until
 * commit. A second writer of the same tenant waits on that row until the first has committed, so
 * ids of a tenant commit — and become visible — in id order, and "events after my last id" never
 * skips one that commits later (a sequence would allow that).
 */
export class SqlStore implements Store {
  readonly kind: 'pglite' | 'postgres';
  /** Where reads went; for tests and metrics. */
  readonly stats: ReadRouter['stats'];
  /**
   * For what bypasses routing: the revocation pruning nobody waits for (and
   * test/integration/fail-fast-postgres.test.ts, which holds a transaction open on it).
   */
  private readonly primary: Db;
  private readonly router: ReadRouter;
  private readonly writer: BatchWriter;
  private readonly log: StoreLogger;
  private readonly stopStuckSessions: (() => void) | undefined;
  private lastPrune = 0;
  private lateListener: LateCommitListener = () => {};

  constructor(
    private readonly backend: Backend,
    private readonly opts: SqlStoreOptions = {},
  ) {
    this.kind = backend.kind;
    this.primary = backend.primary;
    this.log = opts.logger ?? silentLogger;
    this.router = new ReadRouter(backend.primary, backend.replicas, opts, this.log);
    this.stats = this.router.stats;
    this.writer = new BatchWriter(
      this.router,
      this.log,
      opts.writeTimeoutMs,
      { maxBatch: opts.maxBatch, maxInFlight: opts.commitConcurrency },
      (tenant, events) => this.committedLate(tenant, events),
    );
    const stuckMs = opts.stuckSessionMs ?? 0;
    if (backend.kind === 'postgres' && stuckMs > 0) this.stopStuckSessions = endStuckSessions(this.router, stuckMs, this.log);
  }

  /** Runs one statement on the primary and returns its rows (diagnostics and tests). */
  query(q: SQL): Promise<Record<string, unknown>[]> {
    return this.router.query(q);
  }

  /**
   * `SELECT pg_is_in_recovery()` routed like a list read: true when a replica served it. The tenant
   * no longer counts (reads are routed by `fresh` alone); the parameter stays for the tests' calls.
   */
  readIsFromReplica(_tenant: string, opts?: ReadOptions): Promise<boolean> {
    return this.router.read(opts, inRecovery);
  }

  // ---------------------------------------------------------------- schema

  async migrate(): Promise<void> {
    await this.applyMigrations();
  }

  /** Applies pending migrations; returns the file names applied (none when up to date). */
  async applyMigrations(): Promise<string[]> {
    try {
      const applied = await runMigrations(this.backend.migrations, this.opts.migrationsDir);
      if (applied.length > 0) this.log.info({ applied }, 'migrations applied');
      return applied;
    } catch (err) {
      throw toStoreError(err);
    }
  }

  partitionsAhead(now: Date, max?: number): Promise<number> {
    return partitionsAhead(this.router, now, max);
  }

  ensurePartitions(now: Date, ahead?: number): Promise<string[]> {
    return ensurePartitions(this.router, this.log, now, ahead);
  }

  dropExpiredPartitions(now: Date, retentionMonths: number): Promise<string[]> {
    return dropExpiredPartitions(this.router, now, retentionMonths);
  }

  // ---------------------------------------------------------------- workflows and processes

  async createWorkflow(tenant: string, input: CreateWorkflowInput): Promise<Workflow> {
    return this.router.onPrimary(insertWorkflow(tenant, input));
  }

  async listWorkflows(tenant: string, opts?: ReadOptions): Promise<Workflow[]> {
    return this.router.read(opts, workflowList(tenant));
  }

  async getWorkflow(tenant: string, id: string, opts?: ReadOptions): Promise<Workflow | null> {
    return this.router.read(opts, workflowById(tenant, id));
  }

  async createProcess(actor: Actor, input: CreateProcessInput): Promise<{ process: Process; event: FluxoEvent }> {
    return this.router.onPrimary(
      (db, deadline) => transactionWithin(db, deadline, insertProcess(actor, input)),
      undefined,
      ({ event }) => this.committedLate(actor.tenant, [event]),
    );
  }

  async getProcess(tenant: string, id: string, opts?: ReadOptions): Promise<Process | null> {
    return this.router.read(opts, processById(tenant, id));
  }

  async listProcesses(tenant: string, query: ListProcessesQuery, opts?: ReadOptions): Promise<Page<Process>> {
    return this.router.read(opts, processPage(tenant, query));
  }

  // ---------------------------------------------------------------- group commit

  /**
   * Idempotency: the request id is claimed FIRST with an insert of a placeholder row. A concurrent
   * duplicate (another node) blocks on that key until the first commits (then it reads and returns
   * the stored result) or releases it. Reusing a request id for another process returns the first
   * result too. Goes through group commit (see batch-commit.ts).
   */
  async transition(actor: Actor, req: TransitionRequest): Promise<TransitionResult> {
    const out = await this.writer.submit({ kind: 'transition', actor, req, maxDataBytes: this.opts.maxProcessDataBytes });
    if (out.kind !== 'transition') throw new Error('group commit: wrong result kind');
    return out.result;
  }

  async appendEvent(input: CustomEventInput): Promise<FluxoEvent> {
    const [event] = await this.appendEvents(input.tenant, [input]);
    return event!;
  }

  /** Several custom events of one tenant, committed together, with consecutive ids in order. */
  async appendEvents(tenant: string, inputs: Omit<CustomEventInput, 'tenant'>[]): Promise<FluxoEvent[]> {
    return (await this.appendEventsOnce(tenant, inputs, undefined)).events;
  }

  async appendEventsOnce(
    tenant: string,
    inputs: Omit<CustomEventInput, 'tenant'>[],
    requestId: string | undefined,
  ): Promise<{ events: FluxoEvent[]; replayed: boolean }> {
    if (inputs.length === 0) return { events: [], replayed: false };
    const resolved: ResolvedAppend[] = inputs.map((input) => {
      const room = parseRoom(input.room);
      if (!room) throw new AppError('invalid_room');
      return {
        ...input,
        room: room.name,
        processId: room.kind === 'process' ? room.id : null,
        workflowId: room.kind === 'workflow' ? room.id : null,
      };
    });
    const out = await this.writer.submit({ kind: 'append', tenant, inputs: resolved, ...(requestId ? { requestId } : {}) });
    if (out.kind !== 'append') throw new Error('group commit: wrong result kind');
    return { events: out.events, replayed: out.replayed };
  }

  /** Batches committed and the writes they carried, for the batch-size metric. */
  get commitStats(): { batches: number; items: number } {
    return this.writer.stats;
  }

  onLateCommit(listener: LateCommitListener): void {
    this.lateListener = listener;
  }

  /**
   * A write answered store_unavailable committed after all: its COMMIT was in flight when the
   * deadline passed (a stalled WAL flush, a synchronous standby that does not answer, a primary
   * frozen at that moment), and a COMMIT sent cannot be recalled. Its events are in the log, and
   * nobody else would send them before their rooms' next events.
   */
  private committedLate(tenant: string, events: FluxoEvent[]): void {
    this.log.warn({ tenant, events: events.length }, 'a write answered store_unavailable committed after all; its events are sent now');
    try {
      this.lateListener(tenant, events);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'sending the events of a late commit failed');
    }
  }

  // ---------------------------------------------------------------- event log

  /**
   * The room's head: its last offset and the id of the event at it (0 and 0 before its first event),
   * with the log's epoch. Read on the primary, like the replay that follows it.
   */
  async roomPosition(tenant: string, room: string): Promise<RoomPosition> {
    return this.router.onPrimary(roomHead(tenant, room));
  }

  /** On the primary, as roomPosition (the tail check compares them with what this node sent). */
  async roomHeads(keys: RoomKey[]): Promise<RoomHead[]> {
    if (keys.length === 0) return [];
    return this.router.onPrimary(roomHeadsOf(keys));
  }

  /**
   * Always read from the PRIMARY, whatever `opts` says: a replica replays WAL behind the primary,
   * and a client that got event N live (from the primary's commit) and asks "after N" on a lagging
   * replica would be told nothing newer exists — or, worse, page past events it has not seen yet
   * once its cursor moved on. Checking a replica's pg_last_wal_replay_lsn() against the primary's
   * pg_current_wal_lsn() costs a primary round trip per call anyway, so replay stays on the primary
   * where the (tenant, id) indexes make it cheap.
   */
  async eventsAfter(tenant: string, room: string, after: number, limit: number, _opts?: ReadOptions): Promise<EventPage> {
    return this.router.onPrimary(roomEventsAfter(tenant, room, after, limit));
  }

  /** On the primary, as eventsAfter: history up to a position read there must not miss its latest events. */
  async eventsBefore(tenant: string, room: string, after: number, before: number, limit: number): Promise<EventPage> {
    return this.router.onPrimary(roomEventsBefore(tenant, room, after, before, limit));
  }

  async pruneIdempotencyKeys(before: Date): Promise<number> {
    return this.router.maintenance(deleteIdempotencyKeysBefore(before));
  }

  // ---------------------------------------------------------------- revocations

  async revokeToken(key: string, expiresAt: Date): Promise<void> {
    await this.router.onPrimary(recordRevocation(key, expiresAt));
    if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) {
      this.lastPrune = Date.now();
      deleteExpiredRevocations()(this.primary).then(
        () => {},
        (err: unknown) => this.log.warn({ err: (err as Error).message }, 'pruning expired revocations failed'),
      );
    }
  }

  /**
   * Unexpired revocations recorded (or extended) after `since` — all of them when null — for the
   * in-memory set every node keeps (server/auth/revocations.ts). Not tenant-scoped; read on a
   * healthy replica when there is one (so that authentication does not need the primary), else on
   * the primary. `revokedAt` is the primary's clock.
   */
  async revokedSince(since: Date | null): Promise<{ key: string; expiresAt: Date; revokedAt: Date }[]> {
    const q = revocationsSince(since);
    return this.router.read(undefined, q).catch((err: unknown) => {
      // A replica that has not replayed migration 0003 yet (a node starting right after the upgrade
      // applied it) has no revoked_at: the primary has. Without this a new node stayed not ready.
      if (isMissingSchemaError(err)) return this.router.onPrimary(q);
      throw err;
    });
  }

  // ---------------------------------------------------------------- health

  async ping(): Promise<void> {
    // `transaction_read_only` is what a write would meet: on for a standby (a demoted primary, a
    // URL pointing at a replica) and with default_transaction_read_only.
    const [row] = await this.query(sql`SELECT current_setting('transaction_read_only') AS read_only`);
    if (row?.read_only === 'on') throw new ReadOnlyPrimary();
  }

  /** Last measured replay lag of each replica, for the `db_replica_lag_seconds` gauge. */
  replicaLag(): { replica: number; seconds: number | null }[] {
    return this.router.replicaLag();
  }

  async close(): Promise<void> {
    this.router.close();
    this.stopStuckSessions?.();
    await this.backend.close();
  }
}
