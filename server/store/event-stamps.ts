import type { Db } from './db.js';
import { runPrepared } from './prepared.js';
import type { events } from './schema.js';

/** An event as stamped, before the database gives it its time: every column but `occurred_at`. */
export type StampedEvent = Omit<typeof events.$inferSelect, 'occurredAt'>;
/** An event before it has an id and its room offsets. */
export type EventDraft = Omit<StampedEvent, 'tenantId' | 'id' | 'offsets'>;

const key = (tenant: string, room: string) => `${tenant}\0${room}`;

/**
 * ONE statement, one round trip, two jsonb parameters whatever the batch size (so prepared once per
 * connection, prepared.ts). The room upsert reads its tenant's new last id from the tenant upsert's
 * output, so a room's row is locked only after its tenant's row — the discipline that keeps room
 * rows free of deadlocks — and tenants are locked in name order.
 */
const STAMP = `WITH t AS (
    INSERT INTO tenant_cursors (tenant_id, last_event_id)
    SELECT x.t, x.n FROM jsonb_to_recordset($1::jsonb) AS x(t text, n bigint)
    ON CONFLICT (tenant_id) DO UPDATE SET last_event_id = tenant_cursors.last_event_id + excluded.last_event_id
    RETURNING tenant_id, last_event_id
  ), r AS (
    INSERT INTO room_heads (tenant_id, room, last_offset, last_id)
    SELECT x.t, x.r, x.n, t.last_event_id - x.b
    FROM jsonb_to_recordset($2::jsonb) AS x(t text, r text, n bigint, b bigint) JOIN t ON t.tenant_id = x.t
    ON CONFLICT (tenant_id, room) DO UPDATE SET last_offset = room_heads.last_offset + excluded.last_offset, last_id = excluded.last_id
    RETURNING tenant_id, room, last_offset
  )
  SELECT tenant_id, NULL AS room, last_event_id AS last, clock_timestamp() AS at FROM t
  UNION ALL SELECT tenant_id, room, last_offset, clock_timestamp() FROM r`;

/**
 * Gives each draft, in the order given, the next id of its tenant and the next offset in each of
 * its rooms: the last statement before the events are inserted (see SqlStore on why ids are taken
 * last). A room's row is only ever updated by a transaction that already holds its tenant's row, so
 * room rows cannot deadlock, and a room's offsets are handed out in the same order as the tenant's
 * ids. Also returns the time the events occurred at, one for the batch, so that the events are
 * complete here and the insert needs no answer (batch-commit.ts sends it with the COMMIT).
 */
export async function stampEvents(
  tx: Db,
  drafts: readonly { tenant: string; values: EventDraft }[],
): Promise<{ stamped: StampedEvent[]; at: Date }> {
  if (drafts.length === 0) return { stamped: [], at: new Date() };
  // Per tenant: its events in this batch. Per room: its events in this batch (the increment of its
  // offset) and how many of its tenant's events of the batch come after the room's last one (so
  // that the room's last id is the tenant's new last id minus that).
  const perTenant = new Map<string, number>();
  const heads = new Map<string, { t: string; r: string; n: number; seen: number }>();
  for (const d of drafts) {
    const seen = (perTenant.get(d.tenant) ?? 0) + 1;
    perTenant.set(d.tenant, seen);
    for (const room of d.values.rooms) {
      const head = heads.get(key(d.tenant, room));
      if (head) {
        head.n++;
        head.seen = seen;
      } else heads.set(key(d.tenant, room), { t: d.tenant, r: room, n: 1, seen });
    }
  }
  const tenants = [...perTenant.keys()].sort().map((t) => ({ t, n: perTenant.get(t)! }));
  const rooms = [...heads.values()].map((h) => ({ t: h.t, r: h.r, n: h.n, b: perTenant.get(h.t)! - h.seen }));
  const out = await runPrepared(tx, STAMP, [JSON.stringify(tenants), JSON.stringify(rooms)]);
  const nextId = new Map<string, number>();
  const nextOffset = new Map<string, number>();
  // The time the events are stamped with: the database's, as `occurred_at` was when it defaulted.
  const first = out[0]?.at;
  const at = first instanceof Date ? first : new Date(String(first));
  for (const row of out) {
    const tenant = String(row.tenant_id);
    if (row.room === null) nextId.set(tenant, Number(row.last) - perTenant.get(tenant)! + 1);
    else {
      const k = key(tenant, String(row.room));
      nextOffset.set(k, Number(row.last) - heads.get(k)!.n + 1);
    }
  }
  const stamped = drafts.map((d) => {
    const id = nextId.get(d.tenant)!;
    nextId.set(d.tenant, id + 1);
    const offsets = d.values.rooms.map((room) => {
      const k = key(d.tenant, room);
      const offset = nextOffset.get(k)!;
      nextOffset.set(k, offset + 1);
      return offset;
    });
    return { ...d.values, tenantId: d.tenant, id, offsets };
  });
  return { stamped, at };
}
