import { randomUUID } from 'node:crypto';
import { and, arrayContains, asc, count, desc, eq, gt, lt, type SQL, sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { FluxoEvent, Process, RoomPosition, TransitionRequest, TransitionResult, Workflow } from '../../shared/protocol.js';
import { parseRoom } from '../../shared/rooms.js';
import type { CreateProcessInput, CreateWorkflowInput, ListProcessesQuery } from '../../shared/schemas.js';
import { AppError } from '../errors.js';
import { commitBatch, type ResolvedAppend, type WriteItem, type WriteResult } from './batch-commit.js';
import { type Deadline, DeadlineExceeded, transactionWithin, withDeadline } from './deadline.js';
import { isConnectionError, isMissingSchemaError, isTimeoutError, toStoreError } from './errors.js';
import { type EventDraft, stampEvents } from './event-stamps.js';
import { GroupCommit, type Outcome } from './group-commit.js';
import { type MigrationClient, runMigrations } from './migrator.js';
import {
  decodeCursor,
  encodeCursor,
  monthStart,
  monthsBefore,
  partitionName,
  partitionRange,
  rowsOf,
  toEvent,
  toProcess,
  toWorkflow,
} from './rows.js';
import { events, idempotencyKeys, processes, revokedTokens, roomHeads, type Schema, streamEpoch, workflows } from './schema.js';
import type { Actor, CustomEventInput, Page, ReadOptions, Store } from './store.js';

/** Both drizzle-orm/pglite and drizzle-orm/postgres-js databases (and their transactions) are this. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

/** pino-compatible subset. */
export interface StoreLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** What a driver module hands to SqlStore. */
export interface Backend {
  kind: 'pglite' | 'postgres';
  primary: Db;
  replicas: Db[];
  migrations: MigrationClient;
  close(): Promise<void>;
}

export interface SqlStoreOptions {
  /**
   * After a write in a tenant, non-fresh reads of that tenant go to the primary for this long.
   * The store only knows the tenant; per-user read-your-writes is the caller's `fresh` flag.
   * @default 0
   */
  readYourWritesMs?: number;
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
   * than this are ended (see `endStuckSessions`). Unset or 0: not done.
   */
  stuckSessionMs?: number;
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
/** Expired revocations are deleted at most this often (on revokeToken). */
const PRUNE_EVERY_MS = 60_000;
/** Serialises partition maintenance of several nodes (advisory lock key). */
const PARTITION_LOCK_KEY = 7_357_002;

const silentLogger: StoreLogger = { info() {}, warn() {}, error() {} };

/** `p`, or store_unavailable after `ms` if it has not settled by then. */
function answerWithin<T>(p: Promise<T>, ms: number): Promise<T> {
  return withDeadline(ms, () => p).catch((err: unknown) => {
    throw err instanceof DeadlineExceeded ? toStoreError(err) : err;
  });
}

function roomsOf(processId: string, workflowId: string): string[] {
  return [`process:${processId}`, `workflow:${workflowId}`, 'tenant'];
}

/** The conditions that select one room's events of a tenant (invalid_room for a bad name). */
function roomEvents(tenant: string, room: string): SQL[] {
  const parsed = parseRoom(room);
  if (!parsed) throw new AppError('invalid_room');
  const conds: SQL[] = [eq(events.tenantId, tenant), arrayContains(events.rooms, [parsed.name])];
  // The id columns let the (tenant_id, process_id|workflow_id, id) indexes serve these rooms.
  if (parsed.kind === 'process') conds.push(eq(events.processId, parsed.id));
  if (parsed.kind === 'workflow') conds.push(eq(events.workflowId, parsed.id));
  return conds;
}

/**
 * The one Store implementation over drizzle, for PGlite and Postgres (+ streaming replicas).
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
  readonly stats = { primaryReads: 0, replicaReads: 0, replicaFallbacks: 0 };
  private readonly primary: Db;
  private readonly replicas: Db[];
  private readonly replicaDownUntil: number[];
  private nextReplica = 0;
  private readonly lastWrite = new Map<string, number>();
  private readonly readYourWritesMs: number;
  private readonly log: StoreLogger;
  private lastPrune = 0;
  /** Seconds of replay lag per replica; null until measured or while unreachable. */
  private readonly replicaLagS: (number | null)[];
  private lagTimer: NodeJS.Timeout | undefined;
  private stuckTimer: NodeJS.Timeout | undefined;
  private endingStuck = false;
  private stuckLookupFailing = false;
  private readonly group: GroupCommit<WriteItem, WriteResult>;
  /** When each write submitted to group commit must be answered (writeTimeoutMs after submit). */
  private readonly deadlines = new WeakMap<WriteItem, number>();

  constructor(
    private readonly backend: Backend,
    private readonly opts: SqlStoreOptions = {},
  ) {
    this.kind = backend.kind;
    this.primary = backend.primary;
    this.replicas = backend.replicas;
    this.replicaDownUntil = backend.replicas.map(() => 0);
    this.replicaLagS = backend.replicas.map(() => null);
    if (this.replicas.length > 0 && opts.replicaMaxLagMs !== undefined) {
      void this.probeLag();
      this.lagTimer = setInterval(() => void this.probeLag(), opts.lagProbeMs ?? 1000).unref();
    }
    const stuckMs = opts.stuckSessionMs ?? 0;
    if (backend.kind === 'postgres' && stuckMs > 0) {
      this.stuckTimer = setInterval(() => void this.endStuckSessions(stuckMs), Math.min(1000, Math.max(100, stuckMs / 3))).unref();
    }
    this.readYourWritesMs = opts.readYourWritesMs ?? 0;
    this.log = opts.logger ?? silentLogger;
    this.group = new GroupCommit((items) => this.commitGroup(items), {
      maxBatch: opts.maxBatch,
      maxInFlight: opts.commitConcurrency,
    });
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * Runs against the primary, within `timeoutMs` (default: writeTimeoutMs); connection failures and
   * timeouts become `store_unavailable`.
   */
  private async write<T>(
    tenant: string | null,
    fn: (db: Db, deadline: Deadline | null) => Promise<T>,
    timeoutMs = this.opts.writeTimeoutMs,
  ): Promise<T> {
    try {
      return await (timeoutMs === undefined ? fn(this.primary, null) : withDeadline(timeoutMs, (d) => fn(this.primary, d)));
    } catch (err) {
      throw toStoreError(err);
    } finally {
      if (tenant !== null && this.readYourWritesMs > 0) this.lastWrite.set(tenant, Date.now());
    }
  }

  /**
   * Reads that may lag go to a healthy replica (round robin); `fresh`, a recent write in the tenant
   * or no healthy replica send them to the primary. A replica that fails with a connection error is
   * skipped for a while and the read is retried on the primary.
   */
  private async read<T>(tenant: string, opts: ReadOptions | undefined, fn: (db: Db) => Promise<T>): Promise<T> {
    const index = opts?.fresh || this.recentlyWrote(tenant) ? -1 : this.pickReplica();
    const replica = index >= 0 ? this.replicas[index] : undefined;
    if (!replica) {
      this.stats.primaryReads++;
      return this.write(null, fn);
    }
    try {
      this.stats.replicaReads++;
      return await this.onReplica(replica, fn);
    } catch (err) {
      // Unreachable, or silent (frozen, restarting, its pool waiting to reconnect): skip it at once.
      if (!isConnectionError(err) && !isTimeoutError(err)) throw toStoreError(err);
      this.replicaDownUntil[index] = Date.now() + REPLICA_COOLDOWN_MS;
      this.stats.replicaFallbacks++;
      this.log.warn({ replica: index, err: (err as Error).message }, 'replica unreachable; reading from the primary');
      this.stats.primaryReads++;
      return this.write(null, fn);
    }
  }

  private onReplica<T>(replica: Db, fn: (db: Db) => Promise<T>): Promise<T> {
    const ms = this.opts.replicaTimeoutMs;
    return ms === undefined ? fn(replica) : withDeadline(ms, () => fn(replica));
  }

  /**
   * Partition and key maintenance on the primary, bounded by MAINTENANCE_TIMEOUT_MS rather than
   * writeTimeoutMs; its transactions start with NO_STATEMENT_TIMEOUT (they may move or delete many
   * rows). lock_timeout still applies: it must not queue every writer behind a lock it waits for.
   */
  private maintenance<T>(fn: (db: Db, deadline: Deadline | null) => Promise<T>): Promise<T> {
    return this.write(null, fn, this.opts.writeTimeoutMs === undefined ? undefined : MAINTENANCE_TIMEOUT_MS);
  }

  private recentlyWrote(tenant: string): boolean {
    if (this.readYourWritesMs <= 0) return false;
    const at = this.lastWrite.get(tenant);
    if (at === undefined) return false;
    if (Date.now() - at < this.readYourWritesMs) return true;
    this.lastWrite.delete(tenant);
    return false;
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

  /**
   * The room's head: its last offset and the id of the event at it (0 and 0 before its first event),
   * with the log's epoch. Read on the primary, like the replay that follows it.
   */
  async roomPosition(tenant: string, room: string): Promise<RoomPosition> {
    return this.write(null, async (db) => {
      const [row] = await db
        .select({ epoch: streamEpoch.epoch, offset: roomHeads.lastOffset, id: roomHeads.lastId })
        .from(streamEpoch)
        .leftJoin(roomHeads, and(eq(roomHeads.tenantId, tenant), eq(roomHeads.room, room)));
      if (!row) throw new Error('stream_epoch has no row: run the migrations');
      return { offset: Number(row.offset ?? 0), id: Number(row.id ?? 0), epoch: row.epoch };
    });
  }

  /** Takes the tenant's next event id and room offsets and writes the event: the last step before commit. */
  private async insertEvent(tx: Db, tenant: string, values: EventDraft): Promise<FluxoEvent> {
    const rows = await stampEvents(tx, [{ tenant, values }]);
    const [ev] = await tx.insert(events).values(rows).returning();
    return toEvent(ev!);
  }

  /** Runs one statement on the primary and returns its rows (diagnostics and tests). */
  async query(q: SQL): Promise<Record<string, unknown>[]> {
    return this.write(null, async (db) => rowsOf(await db.execute(q)));
  }

  /** `SELECT pg_is_in_recovery()` routed like a list read: true when a replica served it. */
  async readIsFromReplica(tenant: string, opts?: ReadOptions): Promise<boolean> {
    return this.read(tenant, opts, async (db) => rowsOf(await db.execute(sql`SELECT pg_is_in_recovery() AS r`))[0]?.r === true);
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

  /**
   * Creates the monthly partitions of the month of `now` and the next `ahead` months. When
   * `events_default` already holds rows of such a month (written while it was missing), plain
   * CREATE … PARTITION OF would fail; those rows are moved into a new table that is then attached.
   */
  async partitionsAhead(now: Date, max = 24): Promise<number> {
    let n = 0;
    while (n < max) {
      const name = partitionName(monthStart(now, n + 1));
      const exists = await this.query(sql`SELECT to_regclass(${name}) IS NOT NULL AS e`);
      if (exists[0]?.e !== true) break;
      n++;
    }
    return n;
  }

  async ensurePartitions(now: Date, ahead = 3): Promise<string[]> {
    const created: string[] = [];
    for (let i = 0; i <= ahead; i++) {
      const from = monthStart(now, i);
      const to = monthStart(now, i + 1);
      const name = partitionName(from);
      const exists = await this.query(sql`SELECT to_regclass(${name}) IS NOT NULL AS e`);
      if (exists[0]?.e === true) continue;
      const made = await this.maintenance((db, deadline) =>
        transactionWithin(db, deadline, async (tx) => {
          await tx.execute(NO_STATEMENT_TIMEOUT);
          await tx.execute(sql`SELECT pg_advisory_xact_lock(${PARTITION_LOCK_KEY})`);
          const again = rowsOf(await tx.execute(sql`SELECT to_regclass(${name}) IS NOT NULL AS e`));
          if (again[0]?.e === true) return false;
          // Blocks inserts into the default partition (only) while we look and move.
          await tx.execute(sql`LOCK TABLE events_default IN EXCLUSIVE MODE`);
          const ident = sql.raw(name);
          const bounds = sql.raw(`FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`);
          const stray = rowsOf(
            await tx.execute(
              sql`SELECT count(*)::int AS n FROM events_default WHERE occurred_at >= ${from.toISOString()}::timestamptz AND occurred_at < ${to.toISOString()}::timestamptz`,
            ),
          );
          const n = Number(stray[0]?.n ?? 0);
          if (n === 0) {
            await tx.execute(sql`CREATE TABLE ${ident} PARTITION OF events FOR VALUES ${bounds}`);
          } else {
            await tx.execute(sql`CREATE TABLE ${ident} (LIKE events INCLUDING DEFAULTS)`);
            await tx.execute(
              sql`WITH moved AS (DELETE FROM events_default WHERE occurred_at >= ${from.toISOString()}::timestamptz AND occurred_at < ${to.toISOString()}::timestamptz RETURNING *) INSERT INTO ${ident} SELECT * FROM moved`,
            );
            await tx.execute(sql`ALTER TABLE events ATTACH PARTITION ${ident} FOR VALUES ${bounds}`);
            this.log.info({ partition: name, moved: n }, 'moved events from the default partition');
          }
          return true;
        }),
      );
      if (made) created.push(name);
    }
    return created;
  }

  /** Detaches and drops monthly partitions that end on or before `now` − `retentionMonths`. Never the default one. */
  async dropExpiredPartitions(now: Date, retentionMonths: number): Promise<string[]> {
    if (retentionMonths <= 0) return [];
    const cutoff = monthsBefore(now, retentionMonths);
    const rows = await this.query(
      sql`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass`,
    );
    const dropped: string[] = [];
    for (const row of rows) {
      const name = String(row.name);
      const range = partitionRange(name);
      if (!range || range.to.getTime() > cutoff.getTime()) continue;
      await this.maintenance((db, deadline) =>
        transactionWithin(db, deadline, async (tx) => {
          await tx.execute(NO_STATEMENT_TIMEOUT);
          await tx.execute(sql`SELECT pg_advisory_xact_lock(${PARTITION_LOCK_KEY})`);
          await tx.execute(sql`ALTER TABLE events DETACH PARTITION ${sql.raw(name)}`);
          await tx.execute(sql`DROP TABLE ${sql.raw(name)}`);
        }),
      );
      dropped.push(name);
    }
    return dropped.sort();
  }

  // ---------------------------------------------------------------- workflows

  async createWorkflow(tenant: string, input: CreateWorkflowInput): Promise<Workflow> {
    return this.write(tenant, async (db) => {
      const [row] = await db
        .insert(workflows)
        .values({ tenantId: tenant, id: randomUUID(), name: input.name, stages: input.stages, transitions: input.transitions })
        .returning();
      return toWorkflow(row!);
    });
  }

  async listWorkflows(tenant: string, opts?: ReadOptions): Promise<Workflow[]> {
    return this.read(tenant, opts, async (db) => {
      const rows = await db
        .select()
        .from(workflows)
        .where(eq(workflows.tenantId, tenant))
        .orderBy(asc(workflows.createdAt), asc(workflows.id));
      return rows.map(toWorkflow);
    });
  }

  async getWorkflow(tenant: string, id: string, opts?: ReadOptions): Promise<Workflow | null> {
    return this.read(tenant, opts, async (db) => {
      const [row] = await db
        .select()
        .from(workflows)
        .where(and(eq(workflows.tenantId, tenant), eq(workflows.id, id)));
      return row ? toWorkflow(row) : null;
    });
  }

  // ---------------------------------------------------------------- processes

  async createProcess(actor: Actor, input: CreateProcessInput): Promise<{ process: Process; event: FluxoEvent }> {
    const tenant = actor.tenant;
    return this.write(tenant, (db, deadline) =>
      transactionWithin(db, deadline, async (tx) => {
        const [wf] = await tx
          .select({ stages: workflows.stages })
          .from(workflows)
          .where(and(eq(workflows.tenantId, tenant), eq(workflows.id, input.workflowId)));
        if (!wf) throw new AppError('not_found', 'No such workflow.');
        const stage = input.stage ?? wf.stages[0]!;
        if (!wf.stages.includes(stage)) {
          throw new AppError('validation_failed', undefined, { issues: [{ path: 'stage', message: `unknown stage ${stage}` }] });
        }
        // Millisecond precision on purpose: the list cursor carries created_at as an ISO string.
        const now = new Date();
        const [row] = await tx
          .insert(processes)
          .values({
            tenantId: tenant,
            id: randomUUID(),
            workflowId: input.workflowId,
            title: input.title,
            stage,
            assignee: input.assignee ?? null,
            data: input.data ?? {},
            version: 1,
            createdAt: now,
            updatedAt: now,
          })
          .returning();
        const process = toProcess(row!);
        const event = await this.insertEvent(tx, tenant, {
          type: 'process.created',
          processId: process.id,
          workflowId: process.workflowId,
          rooms: roomsOf(process.id, process.workflowId),
          fromStage: null,
          toStage: stage,
          version: 1,
          actor: actor.userId,
          data: { title: process.title },
        });
        return { process, event };
      }),
    );
  }

  async getProcess(tenant: string, id: string, opts?: ReadOptions): Promise<Process | null> {
    return this.read(tenant, opts, async (db) => {
      const [row] = await db
        .select()
        .from(processes)
        .where(and(eq(processes.tenantId, tenant), eq(processes.id, id)));
      return row ? toProcess(row) : null;
    });
  }

  /** Newest first, keyset-paginated on (created_at, id). */
  async listProcesses(tenant: string, query: ListProcessesQuery, opts?: ReadOptions): Promise<Page<Process>> {
    const limit = query.limit ?? 50;
    const filters: SQL[] = [eq(processes.tenantId, tenant)];
    if (query.workflowId) filters.push(eq(processes.workflowId, query.workflowId));
    if (query.stage) filters.push(eq(processes.stage, query.stage));
    if (query.assignee) filters.push(eq(processes.assignee, query.assignee));
    const conds = [...filters];
    if (query.cursor) {
      const key = decodeCursor(query.cursor);
      conds.push(sql`(${processes.createdAt}, ${processes.id}) < (${key.createdAt}::timestamptz, ${key.id})`);
    }
    return this.read(tenant, opts, async (db) => {
      const rows = await db
        .select()
        .from(processes)
        .where(and(...conds))
        .orderBy(desc(processes.createdAt), desc(processes.id))
        .limit(limit + 1);
      const items = rows.slice(0, limit).map(toProcess);
      const last = items[items.length - 1];
      const nextCursor = rows.length > limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null;
      if (!query.total) return { items, nextCursor };
      // A second statement, not one snapshot with the page: a write between the two can make them
      // differ by that write, which the caller sees live anyway (the board re-asks after events).
      const [counted] = await db
        .select({ n: count() })
        .from(processes)
        .where(and(...filters));
      return { items, nextCursor, total: counted?.n ?? 0 };
    });
  }

  /**
   * Idempotency: the request id is claimed FIRST with an insert of a placeholder row. A concurrent
   * duplicate (another node) blocks on that key until the first commits (then it reads and returns
   * the stored result) or releases it. Reusing a request id for another process returns the first
   * result too. Goes through group commit (see batch-commit.ts).
   */
  async transition(actor: Actor, req: TransitionRequest): Promise<TransitionResult> {
    const out = await this.submit(actor.tenant, { kind: 'transition', actor, req });
    if (out.kind !== 'transition') throw new Error('group commit: wrong result kind');
    return out.result;
  }

  // ---------------------------------------------------------------- events

  async appendEvent(input: CustomEventInput): Promise<FluxoEvent> {
    const [event] = await this.appendEvents(input.tenant, [input]);
    return event!;
  }

  /** Several custom events of one tenant, committed together, with consecutive ids in order. */
  async appendEvents(tenant: string, inputs: Omit<CustomEventInput, 'tenant'>[]): Promise<FluxoEvent[]> {
    if (inputs.length === 0) return [];
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
    const out = await this.submit(tenant, { kind: 'append', tenant, inputs: resolved });
    if (out.kind !== 'append') throw new Error('group commit: wrong result kind');
    return out.events;
  }

  private submit(tenant: string, item: WriteItem): Promise<WriteResult> {
    const touch = () => {
      if (this.readYourWritesMs > 0) this.lastWrite.set(tenant, Date.now());
    };
    touch();
    const ms = this.opts.writeTimeoutMs;
    if (ms === undefined) return this.group.submit(item).finally(touch);
    // Answered by its deadline even while it still waits for a batch: commitGroup then leaves it out
    // (never applied), or its batch, bound by the earliest deadline in it, rolls back (deadline.ts).
    this.deadlines.set(item, Date.now() + ms);
    return answerWithin(this.group.submit(item), ms).finally(touch);
  }

  /**
   * One transaction for the batch. If it throws for another reason than an unreachable database
   * (one item's odd input, a deadlock between nodes), every item is retried alone so one bad write
   * cannot fail the others.
   */
  private async commitGroup(items: WriteItem[]): Promise<Outcome<WriteResult>[]> {
    const now = Date.now();
    const due = items.map((item) => this.deadlines.get(item));
    const late = due.map((d) => d !== undefined && d <= now);
    if (late.includes(true)) {
      // Their callers were answered store_unavailable while they waited: leave them out, unapplied.
      const outcomes = await this.commitGroup(items.filter((_, i) => !late[i]));
      return items.map((_, i) => (late[i] ? { ok: false, error: toStoreError(new DeadlineExceeded(0)) } : outcomes.shift()!));
    }
    if (items.length === 0) return [];
    const deadline = due.every((d) => d !== undefined) ? Math.min(...(due as number[])) - now : undefined;
    try {
      return await this.write(null, (db, d) => transactionWithin(db, d, (tx) => commitBatch(tx, items)), deadline);
    } catch (err) {
      const error = toStoreError(err);
      const unavailable = error instanceof AppError && error.code === 'store_unavailable';
      if (items.length === 1 || unavailable) return items.map(() => ({ ok: false, error }));
      this.log.warn({ err: (err as Error).message, items: items.length }, 'batch commit failed; retrying its writes one by one');
      const outcomes: Outcome<WriteResult>[] = [];
      for (const item of items) outcomes.push(...(await this.commitGroup([item])));
      return outcomes;
    }
  }

  /** Batches committed and the writes they carried, for the batch-size metric. */
  get commitStats(): { batches: number; items: number } {
    return this.group.stats;
  }

  /**
   * Always read from the PRIMARY, whatever `opts` says: a replica replays WAL behind the primary,
   * and a client that got event N live (from the primary's commit) and asks "after N" on a lagging
   * replica would be told nothing newer exists — or, worse, page past events it has not seen yet
   * once its cursor moved on. Checking a replica's pg_last_wal_replay_lsn() against the primary's
   * pg_current_wal_lsn() costs a primary round trip per call anyway, so replay stays on the primary
   * where the (tenant, id) indexes make it cheap.
   */
  async eventsAfter(tenant: string, room: string, after: number, limit: number, _opts?: ReadOptions): Promise<FluxoEvent[]> {
    const conds = roomEvents(tenant, room);
    conds.push(gt(events.id, after));
    return this.write(null, async (db) => {
      const rows = await db
        .select()
        .from(events)
        .where(and(...conds))
        .orderBy(asc(events.id))
        .limit(limit);
      return rows.map(toEvent);
    });
  }

  /** On the primary, as eventsAfter: history up to a position read there must not miss its latest events. */
  async eventsBefore(tenant: string, room: string, after: number, before: number, limit: number): Promise<FluxoEvent[]> {
    const conds = roomEvents(tenant, room);
    conds.push(gt(events.id, after), lt(events.id, before));
    return this.write(null, async (db) => {
      const rows = await db
        .select()
        .from(events)
        .where(and(...conds))
        .orderBy(desc(events.id))
        .limit(limit);
      return rows.reverse().map(toEvent);
    });
  }

  async pruneIdempotencyKeys(before: Date): Promise<number> {
    return this.maintenance((db, deadline) =>
      transactionWithin(db, deadline, async (tx) => {
        await tx.execute(NO_STATEMENT_TIMEOUT);
        const gone = await tx
          .delete(idempotencyKeys)
          .where(lt(idempotencyKeys.createdAt, before))
          .returning({ requestId: idempotencyKeys.requestId });
        return gone.length;
      }),
    );
  }

  // ---------------------------------------------------------------- revocations

  async revokeToken(key: string, expiresAt: Date): Promise<void> {
    await this.write(null, (db) =>
      db
        .insert(revokedTokens)
        // revoked_at: clock_timestamp() rather than the transaction's start, so that the stamp is
        // as close to the commit as it can be (readers page by it: revokedSince).
        .values({ key, expiresAt, revokedAt: sql`clock_timestamp()` })
        .onConflictDoUpdate({
          target: revokedTokens.key,
          set: { expiresAt: sql`GREATEST(${revokedTokens.expiresAt}, excluded.expires_at)`, revokedAt: sql`clock_timestamp()` },
        }),
    );
    if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) {
      this.lastPrune = Date.now();
      this.primary
        .delete(revokedTokens)
        .where(sql`${revokedTokens.expiresAt} <= now()`)
        .then(
          () => {},
          (err: unknown) => this.log.warn({ err: (err as Error).message }, 'pruning expired revocations failed'),
        );
    }
  }

  /** Always on the primary: a revocation must take effect at once. */
  async isRevoked(key: string): Promise<boolean> {
    return this.write(null, async (db) => {
      const rows = await db
        .select({ key: revokedTokens.key })
        .from(revokedTokens)
        .where(and(eq(revokedTokens.key, key), sql`${revokedTokens.expiresAt} > now()`));
      return rows.length > 0;
    });
  }

  /**
   * Unexpired revocations recorded (or extended) after `since` — all of them when null — for the
   * in-memory set every node keeps (server/auth/revocations.ts). Not tenant-scoped; read on a
   * healthy replica when there is one (so that authentication does not need the primary), else on
   * the primary. `revokedAt` is the primary's clock.
   */
  async revokedSince(since: Date | null): Promise<{ key: string; expiresAt: Date; revokedAt: Date }[]> {
    const unexpired = sql`${revokedTokens.expiresAt} > now()`;
    const q = (db: Db) =>
      db
        .select({ key: revokedTokens.key, expiresAt: revokedTokens.expiresAt, revokedAt: revokedTokens.revokedAt })
        .from(revokedTokens)
        .where(since ? and(gt(revokedTokens.revokedAt, since), unexpired) : unexpired);
    return this.read('', undefined, q).catch((err: unknown) => {
      // A replica that has not replayed migration 0003 yet (a node starting right after the upgrade
      // applied it) has no revoked_at: the primary has. Without this a new node stayed not ready.
      if (isMissingSchemaError(err)) return this.write(null, q);
      throw err;
    });
  }

  async ping(): Promise<void> {
    await this.query(sql`SELECT 1`);
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

  /** Last measured replay lag of each replica, for the `db_replica_lag_seconds` gauge. */
  replicaLag(): { replica: number; seconds: number | null }[] {
    return this.replicaLagS.map((seconds, replica) => ({ replica, seconds }));
  }

  /**
   * Ends the sessions a frozen node left holding locks that Postgres itself never ends.
   * idle_in_transaction_session_timeout ends a transaction whose node froze between two statements.
   * But postgres.js sends each statement with parameters in two steps — Parse and Describe, then,
   * once the parameter types are back, Bind, Execute and Sync — and a node frozen between them
   * leaves its session "active" and reading from its client (wait event ClientRead), locks held.
   * Postgres 15 applies neither statement_timeout nor the idle timeout to a session reading from its
   * client (17 has transaction_timeout). A live client answers within a round trip, so any node ends
   * Fluxo sessions found in that state for longer than `ms`.
   */
  private async endStuckSessions(ms: number): Promise<void> {
    if (this.endingStuck) return;
    this.endingStuck = true;
    try {
      const ended = await this.query(sql`SELECT pid, pg_terminate_backend(pid) AS ended FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'fluxo' AND pid <> pg_backend_pid()
          AND state = 'active' AND wait_event_type = 'Client' AND wait_event = 'ClientRead'
          AND state_change < clock_timestamp() - make_interval(secs => ${ms / 1000})`);
      if (ended.length > 0) {
        this.log.warn({ pids: ended.map((r) => r.pid) }, 'ended database sessions stuck mid-statement for their client (a frozen node?)');
      }
      this.stuckLookupFailing = false;
    } catch (err) {
      // Unreachable primary: /ready and the writes say so. Anything else (no permission to end
      // another node's session?) is worth a warning, once.
      if (!(err instanceof AppError) && !this.stuckLookupFailing) {
        this.log.warn({ err: (err as Error).message }, 'could not look for stuck database sessions');
      }
      this.stuckLookupFailing = true;
    } finally {
      this.endingStuck = false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.lagTimer);
    clearInterval(this.stuckTimer);
    await this.backend.close();
  }
}
