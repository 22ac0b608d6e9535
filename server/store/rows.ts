import type { FluxoEvent, Process, Workflow } from '../../shared/protocol.js';
import { roomOf } from '../../shared/rooms.js';
import { AppError } from '../errors.js';
import type { events, processes, workflows } from './schema.js';

export function toWorkflow(row: typeof workflows.$inferSelect): Workflow {
  return { id: row.id, name: row.name, stages: row.stages, transitions: row.transitions, createdAt: row.createdAt.toISOString() };
}

export function toProcess(row: typeof processes.$inferSelect): Process {
  return {
    id: row.id,
    workflowId: row.workflowId,
    title: row.title,
    stage: row.stage,
    assignee: row.assignee,
    data: row.data,
    version: row.version,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function toEvent(row: typeof events.$inferSelect): FluxoEvent {
  return {
    id: Number(row.id),
    type: row.type,
    rooms: row.rooms,
    offsets: row.offsets.map(Number),
    processId: row.processId,
    workflowId: row.workflowId,
    fromStage: row.fromStage,
    toStage: row.toStage,
    version: row.version,
    actor: row.actor,
    at: row.occurredAt.toISOString(),
    data: row.data,
  };
}

/** The `rooms` of every event of a process: its own room, its workflow's, then the tenant's. */
export function roomsOf(processId: string, workflowId: string): string[] {
  return [roomOf.process(processId), roomOf.workflow(workflowId), roomOf.tenant()];
}

/** Keyset position of a process list: (created_at, id) of the last item, newest first. */
export interface PageKey {
  createdAt: string;
  id: string;
}

export function encodeCursor(key: PageKey): string {
  return Buffer.from(JSON.stringify([key.createdAt, key.id])).toString('base64url');
}

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Process ids (randomUUID) and anything else a list may be keyed on: never U+0000. */
const CURSOR_ID = /^[A-Za-z0-9_.@-]{1,128}$/;

export function decodeCursor(cursor: string): PageKey {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    // Exactly what encodeCursor makes: Date.parse accepts strings Postgres refuses ("foo 2024", year +275760).
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string') {
      const [createdAt, id] = value as [string, string];
      // Year 0000 is a JavaScript date and not a Postgres one.
      const dated = ISO_MS.test(createdAt) && !createdAt.startsWith('0000') && new Date(createdAt).toISOString() === createdAt;
      if (dated && CURSOR_ID.test(id)) return { createdAt, id };
    }
  } catch {
    // fall through: a cursor we did not make
  }
  throw new AppError('bad_request', 'The cursor is not valid.');
}

/** Rows of a raw `execute` (PGlite answers `{ rows }`, postgres.js an array). */
export function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  return ((result as { rows?: Record<string, unknown>[] }).rows ?? []) as Record<string, unknown>[];
}
