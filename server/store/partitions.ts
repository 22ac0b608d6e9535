import { sql } from 'drizzle-orm';
import type { StoreLogger } from './db.js';
import type { ReadRouter } from './read-router.js';
import { rowsOf } from './rows.js';

/** Serialises partition maintenance of several nodes (advisory lock key). */
const PARTITION_LOCK_KEY = 7_357_002;

const PARTITION = /^events_(\d{4})_(\d{2})$/;

/** First instant (UTC) of the month `offset` months after the month of `at`. */
export function monthStart(at: Date, offset = 0): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + offset, 1));
}

/** `events_2026_11` for November 2026 (UTC). */
export function partitionName(start: Date): string {
  return `events_${start.getUTCFullYear()}_${String(start.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The month range of a monthly partition name, or null for any other table (e.g. events_default). */
export function partitionRange(name: string): { from: Date; to: Date } | null {
  const m = PARTITION.exec(name);
  if (!m) return null;
  const month = Number(m[2]);
  if (month < 1 || month > 12) return null;
  const from = new Date(Date.UTC(Number(m[1]), month - 1, 1));
  return { from, to: monthStart(from, 1) };
}

/** `now` minus `months` calendar months (day clamped to the target month's length), UTC. */
export function monthsBefore(now: Date, months: number): Date {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth() - months;
  const lastDay = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  return new Date(
    Date.UTC(
      y,
      m,
      Math.min(now.getUTCDate(), lastDay),
      now.getUTCHours(),
      now.getUTCMinutes(),
      now.getUTCSeconds(),
      now.getUTCMilliseconds(),
    ),
  );
}

async function partitionExists(router: ReadRouter, name: string): Promise<boolean> {
  const rows = await router.query(sql`SELECT to_regclass(${name}) IS NOT NULL AS e`);
  return rows[0]?.e === true;
}

/** How many consecutive months after the month of `now` already have a partition (at most `max`). */
export async function partitionsAhead(router: ReadRouter, now: Date, max = 24): Promise<number> {
  let n = 0;
  while (n < max && (await partitionExists(router, partitionName(monthStart(now, n + 1))))) n++;
  return n;
}

/**
 * Creates the monthly partitions of the month of `now` and the next `ahead` months. When
 * `events_default` already holds rows of such a month (written while it was missing), plain
 * CREATE … PARTITION OF would fail; those rows are moved into a new table that is then attached.
 */
export async function ensurePartitions(router: ReadRouter, log: StoreLogger, now: Date, ahead = 3): Promise<string[]> {
  const created: string[] = [];
  for (let i = 0; i <= ahead; i++) {
    const from = monthStart(now, i);
    const to = monthStart(now, i + 1);
    const name = partitionName(from);
    if (await partitionExists(router, name)) continue;
    const made = await router.maintenance(async (tx) => {
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
        log.info({ partition: name, moved: n }, 'moved events from the default partition');
      }
      return true;
    });
    if (made) created.push(name);
  }
  return created;
}

/** Detaches and drops monthly partitions that end on or before `now` − `retentionMonths`. Never the default one. */
export async function dropExpiredPartitions(router: ReadRouter, now: Date, retentionMonths: number): Promise<string[]> {
  if (retentionMonths <= 0) return [];
  const cutoff = monthsBefore(now, retentionMonths);
  const rows = await router.query(
    sql`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass`,
  );
  const dropped: string[] = [];
  for (const row of rows) {
    const name = String(row.name);
    const range = partitionRange(name);
    if (!range || range.to.getTime() > cutoff.getTime()) continue;
    await router.maintenance(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(${PARTITION_LOCK_KEY})`);
      await tx.execute(sql`ALTER TABLE events DETACH PARTITION ${sql.raw(name)}`);
      await tx.execute(sql`DROP TABLE ${sql.raw(name)}`);
    });
    dropped.push(name);
  }
  return dropped.sort();
}
