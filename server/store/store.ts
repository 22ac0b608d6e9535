import type { FluxoEvent, Process, RoomPosition, TransitionRequest, TransitionResult, Workflow } from '../../shared/protocol.js';
import type { CreateProcessInput, CreateWorkflowInput, ListProcessesQuery } from '../../shared/schemas.js';

/** Who performs a write; `actor` is the user id recorded in the event log. */
export interface Actor {
  tenant: string;
  userId: string;
}

/**
 * `fresh`: the caller must see its own recent writes (read-your-writes). Lagging reads
 * (lists, history) go to a replica unless `fresh` is set.
 */
export interface ReadOptions {
  fresh?: boolean;
}

/** A page of a room's events, in id order. */
export interface EventPage {
  events: FluxoEvent[];
  /**
   * The log may hold more in the page's direction: it was full (`limit` events) or cut where its
   * data passed its byte bound (PAGE_DATA_BYTES in queries.ts). False only when nothing follows.
   */
  more: boolean;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
  /** How many items match the query's filters, whatever the cursor; present when asked for (`total`). */
  total?: number;
}

/** A room of one tenant, tenant-relative. */
export interface RoomKey {
  tenant: string;
  room: string;
}

/** Where a room's stream stands in the log: its last offset and the id of the event at it. */
export interface RoomHead extends RoomKey {
  offset: number;
  id: number;
}

export interface CustomEventInput {
  tenant: string;
  /** Tenant-relative room, already validated with parseRoom. */
  room: string;
  type: string;
  actor: string;
  data: Record<string, unknown>;
}

/**
 * Persistence of workflows, processes, the partitioned event log and token revocations.
 * Implementations throw `AppError` (server/errors.ts) with codes from shared/errors.ts:
 * not_found, version_conflict (with `current`), invalid_transition, conflict, request_in_progress, store_unavailable.
 */
export interface Store {
  /** Which backend: 'pglite' or 'postgres'. */
  readonly kind: 'pglite' | 'postgres';
  migrate(): Promise<void>;
  /** Creates monthly partitions of the event log for the month of `now` and the next `ahead` months. Returns the names created. */
  ensurePartitions(now: Date, ahead?: number): Promise<string[]>;
  /** How many consecutive months after the month of `now` already have a partition (for alerting). */
  partitionsAhead(now: Date): Promise<number>;
  /** Detaches and drops partitions whose whole range is older than `retentionMonths` before `now`. Returns the names dropped. */
  dropExpiredPartitions(now: Date, retentionMonths: number): Promise<string[]>;

  createWorkflow(tenant: string, input: CreateWorkflowInput): Promise<Workflow>;
  listWorkflows(tenant: string, opts?: ReadOptions): Promise<Workflow[]>;
  getWorkflow(tenant: string, id: string, opts?: ReadOptions): Promise<Workflow | null>;

  /** Creates the process and appends a `process.created` event in one transaction. */
  createProcess(actor: Actor, input: CreateProcessInput): Promise<{ process: Process; event: FluxoEvent }>;
  getProcess(tenant: string, id: string, opts?: ReadOptions): Promise<Process | null>;
  listProcesses(tenant: string, query: ListProcessesQuery, opts?: ReadOptions): Promise<Page<Process>>;
  /**
   * One transaction: version-checked update of the process + event insert (+ idempotency key).
   * Same `requestId` again → the first result with `replayed: true`, nothing written.
   */
  transition(actor: Actor, req: TransitionRequest): Promise<TransitionResult>;
  /** Persists a custom event (publish API) to one room. */
  appendEvent(input: CustomEventInput): Promise<FluxoEvent>;
  /** Several custom events of one tenant, committed together, with consecutive ids in the given order. */
  appendEvents(tenant: string, inputs: Omit<CustomEventInput, 'tenant'>[]): Promise<FluxoEvent[]>;
  /**
   * `appendEvents` named by `requestId` (when given): the same id again in the same tenant returns
   * the first call's events with `replayed: true` and writes nothing, as a transition's does.
   */
  appendEventsOnce(
    tenant: string,
    inputs: Omit<CustomEventInput, 'tenant'>[],
    requestId: string | undefined,
  ): Promise<{ events: FluxoEvent[]; replayed: boolean }>;
  /**
   * Events of `room` (tenant-relative) with id > after, in id order, at most `limit` and about
   * PAGE_DATA_BYTES of data (at least one). Safe under concurrent commits: ids of a tenant become
   * visible in order.
   */
  eventsAfter(tenant: string, room: string, after: number, limit: number, opts?: ReadOptions): Promise<EventPage>;
  /** The newest events of `room` with after < id < before (bounded as eventsAfter), in id order (recent history). */
  eventsBefore(tenant: string, room: string, after: number, before: number, limit: number): Promise<EventPage>;

  /** The heads of these rooms (offset and id of their last event), read on the primary; rooms without an event are left out. */
  roomHeads(keys: RoomKey[]): Promise<RoomHead[]>;
  /** The head of a room's stream (offset and id 0 before its first event) and the log's epoch, read on the primary. */
  roomPosition(tenant: string, room: string): Promise<RoomPosition>;

  /**
   * Forgets request ids claimed before `before` (their transitions stay in the log); a retry after
   * that is a new request. Returns how many were deleted.
   */
  pruneIdempotencyKeys(before: Date): Promise<number>;

  /** Durable token revocation until `expiresAt`. Idempotent. */
  revokeToken(key: string, expiresAt: Date): Promise<void>;
  /**
   * Unexpired revocations recorded or extended after `since` (all when null), `revokedAt` by the
   * primary's clock. Read on a healthy replica when there is one, else on the primary.
   */
  revokedSince(since: Date | null): Promise<{ key: string; expiresAt: Date; revokedAt: Date }[]>;
  /** Group-commit transactions so far and the writes they carried (for metrics). */
  readonly commitStats: { batches: number; items: number };
  /**
   * `listener` gets the events of every write that committed after its caller was answered
   * store_unavailable (its COMMIT was in flight when the write deadline passed), so that they are
   * sent like any other; one listener, the last given.
   */
  onLateCommit(listener: (tenant: string, events: FluxoEvent[]) => void): void;
  /** Last measured replay lag per replica (seconds; null while unknown or unreachable). */
  replicaLag(): { replica: number; seconds: number | null }[];
  /** Cheap check that the primary answers and takes writes (ReadOnlyPrimary when it is read-only). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
