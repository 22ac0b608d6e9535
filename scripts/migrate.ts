/**
 * `npm run migrate`: applies migrations/*.sql to DATABASE_URL (or PGLITE_DIR, or an in-memory
 * PGlite when neither is set) and creates the event-log partitions for this month and the next three.
 */
import { createStore } from '../server/store/index.js';

const target = process.env.DATABASE_URL ? 'postgres' : process.env.PGLITE_DIR ? `pglite:${process.env.PGLITE_DIR}` : 'pglite (in memory)';
try {
  const store = await createStore({ databaseUrl: process.env.DATABASE_URL || undefined, pgliteDir: process.env.PGLITE_DIR || undefined });
  try {
    const applied = await store.applyMigrations();
    const partitions = await store.ensurePartitions(new Date());
    console.log(`migrate: ${target}: applied ${applied.length ? applied.join(', ') : 'nothing (up to date)'}`);
    console.log(`migrate: partitions created: ${partitions.length ? partitions.join(', ') : 'none (all present)'}`);
  } finally {
    await store.close();
  }
} catch (err) {
  const e = err as Error & { cause?: Error };
  const detail = e.cause && e.cause.message !== e.message ? ` (${e.cause.message})` : '';
  console.error(`migrate: failed on ${target}: ${e.message}${detail}`);
  process.exit(1);
}
