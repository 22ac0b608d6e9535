import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * drizzle-orm view of the tables created by migrations/*.sql. The SQL files are the source of
 * truth (partitioning is hand-written); keep both in step when a column changes.
 */

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export const workflows = pgTable(
  'workflows',
  {
    tenantId: text('tenant_id').notNull(),
    id: text('id').notNull(),
    name: text('name').notNull(),
    stages: jsonb('stages').$type<string[]>().notNull(),
    transitions: jsonb('transitions').$type<Record<string, string[]>>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.id] }), index('workflows_tenant_created').on(t.tenantId, t.createdAt, t.id)],
);

export const processes = pgTable(
  'processes',
  {
    tenantId: text('tenant_id').notNull(),
    id: text('id').notNull(),
    workflowId: text('workflow_id').notNull(),
    title: text('title').notNull(),
    stage: text('stage').notNull(),
    assignee: text('assignee'),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    version: integer('version').notNull(),
    createdAt: createdAt(),
    updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    index('processes_tenant_created').on(t.tenantId, t.createdAt, t.id),
    index('processes_tenant_workflow_stage_created').on(t.tenantId, t.workflowId, t.stage, t.createdAt, t.id),
    index('processes_tenant_stage_created').on(t.tenantId, t.stage, t.createdAt, t.id),
    index('processes_tenant_assignee_created').on(t.tenantId, t.assignee, t.createdAt, t.id),
  ],
);

/** One row per tenant; `UPDATE … RETURNING` on it hands out event ids in commit order. */
export const tenantCursors = pgTable('tenant_cursors', {
  tenantId: text('tenant_id').primaryKey(),
  lastEventId: bigint('last_event_id', { mode: 'number' }).notNull(),
});

/** Partitioned by RANGE (occurred_at), one partition per month plus `events_default`. */
export const events = pgTable(
  'events',
  {
    tenantId: text('tenant_id').notNull(),
    id: bigint('id', { mode: 'number' }).notNull(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().default(sql`clock_timestamp()`),
    type: text('type').notNull(),
    processId: text('process_id'),
    workflowId: text('workflow_id'),
    rooms: text('rooms').array().notNull(),
    /** offsets[i]: the event's position in rooms[i] (migrations/0002_room_streams.sql). */
    offsets: bigint('offsets', { mode: 'number' }).array().notNull(),
    fromStage: text('from_stage'),
    toStage: text('to_stage'),
    version: integer('version'),
    actor: text('actor').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id, t.occurredAt] }),
    index('events_tenant_process_id').on(t.tenantId, t.processId, t.id),
    index('events_tenant_workflow_id').on(t.tenantId, t.workflowId, t.id),
  ],
);

/** Head of each room's stream: its last offset and the id of the event at it. */
export const roomHeads = pgTable(
  'room_heads',
  {
    tenantId: text('tenant_id').notNull(),
    room: text('room').notNull(),
    lastOffset: bigint('last_offset', { mode: 'number' }).notNull(),
    lastId: bigint('last_id', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.room] })],
);

/** One row: the epoch of this event log (positions of another epoch mean nothing here). */
export const streamEpoch = pgTable('stream_epoch', { epoch: text('epoch').notNull() });

export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    tenantId: text('tenant_id').notNull(),
    requestId: text('request_id').notNull(),
    /** The TransitionResult (without `replayed`); NULL only inside the transaction that claimed the key. */
    result: jsonb('result'),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.requestId] }), index('idempotency_keys_created').on(t.createdAt)],
);

export const revokedTokens = pgTable(
  'revoked_tokens',
  {
    key: text('key').primaryKey(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    /** When it was recorded or extended (migrations/0003_revoked_at.sql); nodes read the changes since their last read. */
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('revoked_tokens_expires').on(t.expiresAt), index('revoked_tokens_revoked_at').on(t.revokedAt)],
);

export const schema = { workflows, processes, tenantCursors, events, roomHeads, streamEpoch, idempotencyKeys, revokedTokens };
export type Schema = typeof schema;
