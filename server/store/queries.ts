import { randomUUID } from 'node:crypto';
import { and, arrayContains, asc, count, desc, eq, getTableColumns, gt, lt, type SQL, sql } from 'drizzle-orm';
import type { FluxoEvent, Process, RoomPosition, Workflow } from '../../shared/protocol.js';
import { parseRoom } from '../../shared/rooms.js';
import type { CreateProcessInput, CreateWorkflowInput, ListProcessesQuery } from '../../shared/schemas.js';
import { AppError } from '../errors.js';
import type { Db, Query } from './db.js';
import { stampEvents } from './event-stamps.js';
import { decodeCursor, encodeCursor, roomsOf, rowsOf, toEvent, toProcess, toWorkflow } from './rows.js';
import { events, idempotencyKeys, processes, revokedTokens, roomHeads, streamEpoch, workflows } from './schema.js';
import type { Actor, EventPage, Page, RoomHead, RoomKey } from './store.js';

// The statements of every store call except group commit (batch-commit.ts). Each builder checks its
// input at once — a bad room or cursor fails before any database is picked — and returns the
// statements for the caller to run where it routes them (read-router.ts).

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

/** One row of a table keyed by (tenant_id, id), mapped; null when there is none. */
function rowById<T extends typeof workflows | typeof processes, R>(
  table: T,
  tenant: string,
  id: string,
  map: (row: T['$inferSelect']) => R,
): Query<R | null> {
  return async (db) => {
    const keyed = table as typeof workflows;
    const [row] = await db
      .select()
      .from(keyed)
      .where(and(eq(keyed.tenantId, tenant), eq(keyed.id, id)));
    return row ? map(row as T['$inferSelect']) : null;
  };
}

// ---------------------------------------------------------------- workflows

export function insertWorkflow(tenant: string, input: CreateWorkflowInput): Query<Workflow> {
  return async (db) => {
    const [row] = await db
      .insert(workflows)
      .values({ tenantId: tenant, id: randomUUID(), name: input.name, stages: input.stages, transitions: input.transitions })
      .returning();
    return toWorkflow(row!);
  };
}

export function workflowList(tenant: string): Query<Workflow[]> {
  return async (db) => {
    const rows = await db
      .select()
      .from(workflows)
      .where(eq(workflows.tenantId, tenant))
      .orderBy(asc(workflows.createdAt), asc(workflows.id));
    return rows.map(toWorkflow);
  };
}

export function workflowById(tenant: string, id: string): Query<Workflow | null> {
  return rowById(workflows, tenant, id, toWorkflow);
}

// ---------------------------------------------------------------- processes

/**
 * The body of createProcess's transaction: the process, then its `process.created` event. The
 * event's id and room offsets are taken last, just before commit (see event-stamps.ts).
 */
export function insertProcess(actor: Actor, input: CreateProcessInput): (tx: Db) => Promise<{ process: Process; event: FluxoEvent }> {
  const tenant = actor.tenant;
  return async (tx) => {
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
    const { stamped } = await stampEvents(tx, [
      {
        tenant,
        values: {
          type: 'process.created',
          processId: process.id,
          workflowId: process.workflowId,
          rooms: roomsOf(process.id, process.workflowId),
          fromStage: null,
          toStage: stage,
          version: 1,
          actor: actor.userId,
          data: { title: process.title },
        },
      },
    ]);
    const [ev] = await tx.insert(events).values(stamped).returning();
    return { process, event: toEvent(ev!) };
  };
}

export function processById(tenant: string, id: string): Query<Process | null> {
  return rowById(processes, tenant, id, toProcess);
}

/** Newest first, keyset-paginated on (created_at, id); bad_request at once for a cursor we did not make. */
export function processPage(tenant: string, query: ListProcessesQuery): Query<Page<Process>> {
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
  return async (db) => {
    // As a page of events (PAGE_DATA_BYTES): the first process past the bound, never the page's first.
    const sizes = db
      .select({ createdAt: processes.createdAt, id: processes.id, size: sql<number>`octet_length(${processes.data}::text)`.as('size') })
      .from(processes)
      .where(and(...conds))
      .orderBy(desc(processes.createdAt), desc(processes.id))
      .limit(limit);
    const cut = db.$with('cut').as(
      db
        .select({ createdAt: sql`created_at`.as('stop_at'), id: sql`id`.as('stop_id') })
        .from(
          sql`(SELECT created_at, id, size, sum(size) OVER (ORDER BY created_at DESC, id DESC) AS up_to FROM (${sizes}) AS sizes) AS sized`,
        )
        .where(sql`up_to > ${PAGE_DATA_BYTES} AND up_to <> size`)
        .orderBy(sql`created_at DESC, id DESC`)
        .limit(1),
    );
    const rows = await db
      .with(cut)
      .select({ ...getTableColumns(processes), stopped: sql<boolean>`EXISTS (SELECT 1 FROM cut)` })
      .from(processes)
      .where(
        and(...conds, sql`NOT EXISTS (SELECT 1 FROM cut WHERE (${processes.createdAt}, ${processes.id}) <= (cut.stop_at, cut.stop_id))`),
      )
      .orderBy(desc(processes.createdAt), desc(processes.id))
      .limit(limit + 1);
    const items = rows.slice(0, limit).map(toProcess);
    const last = items[items.length - 1];
    const more = rows.length > limit || rows[0]?.stopped === true;
    const nextCursor = more && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null;
    if (!query.total) return { items, nextCursor };
    // A second statement, not one snapshot with the page: a write between the two can make them
    // differ by that write, which the caller sees live anyway (the board re-asks after events).
    const [counted] = await db
      .select({ n: count() })
      .from(processes)
      .where(and(...filters));
    return { items, nextCursor, total: counted?.n ?? 0 };
  };
}

// ---------------------------------------------------------------- event log

/** The room's head (offset and id 0 before its first event) with the log's epoch. */
export function roomHead(tenant: string, room: string): Query<RoomPosition> {
  return async (db) => {
    const [row] = await db
      .select({ epoch: streamEpoch.epoch, offset: roomHeads.lastOffset, id: roomHeads.lastId })
      .from(streamEpoch)
      .leftJoin(roomHeads, and(eq(roomHeads.tenantId, tenant), eq(roomHeads.room, room)));
    if (!row) throw new Error('stream_epoch has no row: run the migrations');
    return { offset: Number(row.offset ?? 0), id: Number(row.id ?? 0), epoch: row.epoch };
  };
}

/**
 * The heads of several rooms in one statement (rooms without an event are left out): one lookup per
 * key (LATERAL … LIMIT 1). Not prepared: it runs every few seconds per node, and planned on each
 * call it never keeps a plan made while `room_heads` was small.
 */
export function roomHeadsOf(keys: RoomKey[]): Query<RoomHead[]> {
  const param = JSON.stringify(keys.map((k) => ({ t: k.tenant, r: k.room })));
  return async (db) => {
    const rows = rowsOf(
      await db.execute(sql`SELECT h.tenant_id, h.room, h.last_offset, h.last_id
        FROM jsonb_to_recordset(${param}::jsonb) AS x(t text, r text)
        CROSS JOIN LATERAL (
          SELECT h.tenant_id, h.room, h.last_offset, h.last_id FROM room_heads AS h WHERE h.tenant_id = x.t AND h.room = x.r LIMIT 1
        ) AS h`),
    );
    return rows.map((r) => ({ tenant: String(r.tenant_id), room: String(r.room), offset: Number(r.last_offset), id: Number(r.last_id) }));
  };
}

/**
 * Event data a page of the log holds at most (its JSON as Postgres writes it), besides its `limit`:
 * the first event whatever its size, then the next ones while the page stays within it. An event's data may be as large as a
 * request (MAX_PAYLOAD_BYTES), so 1,000 of them would be ~64 MB read, held and encoded for one
 * call — a viewer asking for such pages a few at a time could exhaust a node's memory.
 */
export const PAGE_DATA_BYTES = 1024 * 1024;

/** Events of `room` with id > `after`, oldest first, at most `limit`; invalid_room at once. */
export function roomEventsAfter(tenant: string, room: string, after: number, limit: number): Query<EventPage> {
  return roomEventsPage(tenant, room, after, undefined, limit);
}

/** The newest `limit` events of `room` with after < id < before, oldest first; invalid_room at once. */
export function roomEventsBefore(tenant: string, room: string, after: number, before: number, limit: number): Query<EventPage> {
  return roomEventsPage(tenant, room, after, before, limit);
}

/**
 * Events of `room` with after < id (< before), oldest first: the first `limit` of them, or with
 * `before` the last `limit` (read newest first, so that the index stops after `limit` rows) — cut
 * before the first event that would take the page's data past PAGE_DATA_BYTES. The cut is found in
 * the database (`stop`: one pass over the page's sizes), so no row past it is ever sent; `more` says
 * the page was full or cut.
 */
function roomEventsPage(tenant: string, room: string, after: number, before: number | undefined, limit: number): Query<EventPage> {
  const conds = roomEvents(tenant, room);
  conds.push(gt(events.id, after));
  if (before !== undefined) conds.push(lt(events.id, before));
  const forward = before === undefined;
  return async (db) => {
    const sizes = db
      .select({ id: events.id, size: sql<number>`octet_length(${events.data}::text)`.as('size') })
      .from(events)
      .where(and(...conds))
      .orderBy(forward ? asc(events.id) : desc(events.id))
      .limit(limit);
    // The first event (in page order) past the bound, but never the page's first. Read twice below
    // as a CTE, so computed once; as an uncorrelated subquery it is never re-run per row either.
    const cut = db.$with('cut').as(
      db
        .select({ stop: sql<string | number | null>`${forward ? sql`min(id)` : sql`max(id)`}`.as('stop') })
        .from(
          sql`(SELECT id, size, sum(size) OVER (ORDER BY id ${forward ? sql`ASC` : sql`DESC`}) AS up_to FROM (${sizes}) AS sizes) AS sized`,
        )
        .where(sql`up_to > ${PAGE_DATA_BYTES} AND up_to <> size`),
    );
    const stop = sql`(SELECT stop FROM cut)`;
    const rows = await db
      .with(cut)
      .select({ ...getTableColumns(events), stop: sql<string | number | null>`${stop}` })
      .from(events)
      .where(and(...conds, sql`(${stop} IS NULL OR ${events.id} ${forward ? sql`<` : sql`>`} ${stop})`))
      .orderBy(forward ? asc(events.id) : desc(events.id))
      .limit(limit);
    const more = rows.length === limit || (rows.length > 0 && rows[0]!.stop !== null);
    return { events: (forward ? rows : rows.reverse()).map(toEvent), more };
  };
}

export function deleteIdempotencyKeysBefore(before: Date): Query<number> {
  return async (db) => {
    const gone = await db
      .delete(idempotencyKeys)
      .where(lt(idempotencyKeys.createdAt, before))
      .returning({ requestId: idempotencyKeys.requestId });
    return gone.length;
  };
}

// ---------------------------------------------------------------- revocations

export function recordRevocation(key: string, expiresAt: Date): Query<unknown> {
  return (db) =>
    db
      .insert(revokedTokens)
      // revoked_at: clock_timestamp() rather than the transaction's start, so that the stamp is
      // as close to the commit as it can be (readers page by it: revokedSince).
      .values({ key, expiresAt, revokedAt: sql`clock_timestamp()` })
      .onConflictDoUpdate({
        target: revokedTokens.key,
        set: { expiresAt: sql`GREATEST(${revokedTokens.expiresAt}, excluded.expires_at)`, revokedAt: sql`clock_timestamp()` },
      });
}

export function deleteExpiredRevocations(): Query<unknown> {
  return (db) => db.delete(revokedTokens).where(sql`${revokedTokens.expiresAt} <= now()`);
}

/** Unexpired revocations recorded (or extended) after `since`, all of them when null. */
export function revocationsSince(since: Date | null): Query<{ key: string; expiresAt: Date; revokedAt: Date }[]> {
  const unexpired = sql`${revokedTokens.expiresAt} > now()`;
  return (db) =>
    db
      .select({ key: revokedTokens.key, expiresAt: revokedTokens.expiresAt, revokedAt: revokedTokens.revokedAt })
      .from(revokedTokens)
      .where(since ? and(gt(revokedTokens.revokedAt, since), unexpired) : unexpired);
}

// ---------------------------------------------------------------- diagnostics

/** True when a replica (a server in recovery) runs it. */
export const inRecovery: Query<boolean> = async (db) => rowsOf(await db.execute(sql`SELECT pg_is_in_recovery() AS r`))[0]?.r === true;
