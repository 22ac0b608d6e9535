import { sql } from 'drizzle-orm';
import { rowsOf } from './rows.js';
import { type events, tenantCursors } from './schema.js';
import type { Db } from './sql-store.js';

type EventInsert = typeof events.$inferInsert;
/** An event before it has an id and its room offsets. */
export type EventDraft = Omit<EventInsert, 'tenantId' | 'id' | 'offsets'>;

const key = (tenant: string, room: string) => `${tenant}\0${room}`;

/**
 * Gives each draft, in the order given, the next id of its tenant and the next offset in each of
 * its rooms: two upserts, the last statements before the events are inserted (see SqlStore on why
 * ids are taken last). The tenant rows are locked in name order in one statement; a room's row is
 * only ever updated by a transaction that already holds its tenant's row, so room rows cannot
 * deadlock, and a room's offsets are handed out in the same order as the tenant's ids.
 */
export async function stampEvents(tx: Db, drafts: readonly { tenant: string; values: EventDraft }[]): Promise<EventInsert[]> {
  if (drafts.length === 0) return [];
  const perTenant = new Map<string, number>();
  for (const d of drafts) perTenant.set(d.tenant, (perTenant.get(d.tenant) ?? 0) + 1);
  const tops = await tx
    .insert(tenantCursors)
    .values([...perTenant.keys()].sort().map((t) => ({ tenantId: t, lastEventId: perTenant.get(t)! })))
    .onConflictDoUpdate({
      target: tenantCursors.tenantId,
      set: { lastEventId: sql`${tenantCursors.lastEventId} + excluded.last_event_id` },
    })
    .returning({ tenantId: tenantCursors.tenantId, last: tenantCursors.lastEventId });
  const nextId = new Map(tops.map((t) => [t.tenantId, Number(t.last) - perTenant.get(t.tenantId)! + 1]));
  const rows: EventInsert[] = drafts.map((d) => {
    const id = nextId.get(d.tenant)!;
    nextId.set(d.tenant, id + 1);
    return { ...d.values, tenantId: d.tenant, id, offsets: [] };
  });

  // Per room of the batch: how many of its events (the increment of its offset) and the last id.
  // A room's row is only updated by a transaction that holds its tenant's row (above), so the order
  // of the rows below cannot deadlock.
  const heads = new Map<string, { tenantId: string; room: string; lastOffset: number; lastId: number }>();
  for (const row of rows) {
    for (const room of row.rooms) {
      const k = key(row.tenantId, room);
      const head = heads.get(k);
      if (head) {
        head.lastOffset++;
        head.lastId = row.id;
      } else heads.set(k, { tenantId: row.tenantId, room, lastOffset: 1, lastId: row.id });
    }
  }
  // One statement with one parameter whatever the batch size: built with drizzle's values() it was
  // four parameters a room, and building that SQL doubled drizzle's share of the write path's CPU.
  const ends = rowsOf(
    await tx.execute(sql`INSERT INTO room_heads (tenant_id, room, last_offset, last_id)
      SELECT t, r, n, i FROM jsonb_to_recordset(${JSON.stringify([...heads.values()].map((h) => ({ t: h.tenantId, r: h.room, n: h.lastOffset, i: h.lastId })))}::jsonb)
        AS x(t text, r text, n bigint, i bigint)
      ON CONFLICT (tenant_id, room) DO UPDATE SET last_offset = room_heads.last_offset + excluded.last_offset, last_id = excluded.last_id
      RETURNING tenant_id, room, last_offset`),
  ).map((row) => ({ tenantId: String(row.tenant_id), room: String(row.room), lastOffset: row.last_offset }));
  const nextOffset = new Map(
    ends.map((e) => {
      const k = key(e.tenantId, e.room);
      return [k, Number(e.lastOffset) - heads.get(k)!.lastOffset + 1];
    }),
  );
  for (const row of rows) {
    row.offsets = row.rooms.map((room) => {
      const k = key(row.tenantId, room);
      const offset = nextOffset.get(k)!;
      nextOffset.set(k, offset + 1);
      return offset;
    });
  }
  return rows;
}
