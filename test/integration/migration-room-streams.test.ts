import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { createStore } from '../../server/store/index.js';

const MIGRATIONS = resolve(import.meta.dirname, '../../migrations');

describe('migration 0002_room_streams', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('numbers the events written before it per room, in id order, and sets each room head', async () => {
    const root = await mkdtemp(join(tmpdir(), 'fluxo-mig-'));
    dirs.push(root);
    const onlyFirst = join(root, 'migrations');
    await mkdir(onlyFirst);
    await copyFile(join(MIGRATIONS, '0001_init.sql'), join(onlyFirst, '0001_init.sql'));
    const data = join(root, 'pglite');

    // A log as 0001 left it: two tenants, events in several rooms, ids per tenant.
    const before = await createStore({ pgliteDir: data, migrationsDir: onlyFirst });
    await before.migrate();
    const rows: [string, number, string[]][] = [
      ['a', 1, ['process:p1', 'workflow:w1', 'tenant']],
      ['a', 2, ['process:p2', 'workflow:w1', 'tenant']],
      ['a', 3, ['user:u1']],
      ['a', 4, ['process:p1', 'workflow:w1', 'tenant']],
      ['b', 1, ['process:p1', 'workflow:w1', 'tenant']],
      ['a', 5, ['process:p1']],
    ];
    for (const [tenant, id, rooms] of rows) {
      await before.query(
        sql`INSERT INTO events (tenant_id, id, type, rooms, actor) VALUES (${tenant}, ${id}, 'x', ${sql.raw(`ARRAY[${rooms.map((r) => `'${r}'`).join(',')}]`)}, 'u')`,
      );
    }
    await before.query(sql`INSERT INTO tenant_cursors VALUES ('a', 5), ('b', 1)`);
    await before.close();

    const after = await createStore({ pgliteDir: data });
    try {
      expect(await after.applyMigrations()).toContain('0002_room_streams.sql');
      const got = await after.query(sql`SELECT tenant_id, id, offsets FROM events ORDER BY tenant_id, id`);
      expect(got.map((r) => [r.tenant_id, Number(r.id), (r.offsets as unknown[]).map(Number)])).toEqual([
        ['a', 1, [1, 1, 1]],
        ['a', 2, [1, 2, 2]],
        ['a', 3, [1]],
        ['a', 4, [2, 3, 3]],
        ['a', 5, [3]],
        ['b', 1, [1, 1, 1]],
      ]);
      expect(await after.roomPosition('a', 'process:p1')).toMatchObject({ offset: 3, id: 5 });
      expect(await after.roomPosition('a', 'tenant')).toMatchObject({ offset: 3, id: 4 });
      expect(await after.roomPosition('b', 'workflow:w1')).toMatchObject({ offset: 1, id: 1 });
      // New writes continue each room's numbering.
      const [next] = await after.appendEvents('a', [{ room: 'process:p1', type: 'x', actor: 'u', data: {} }]);
      expect(next).toMatchObject({ id: 6, offsets: [4] });
    } finally {
      await after.close();
    }
  });
});
