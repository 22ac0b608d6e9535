/**
 * `npm run migrate`: applies migrations/*.sql to DATABASE_URL (or PGLITE_DIR, or an in-memory
 * PGlite when neither is set) and creates the event-log partitions for this month and the next three.
 */
import { parseArgs } from 'node:util';
import { createStore } from '../server/store/index.js';

const HELP = `Usage: npm run migrate

Applies migrations/*.sql and creates the event-log partitions for this month and the next three.
No options: the database comes from the environment —
  DATABASE_URL       Postgres (postgres://user:pass@host:5432/db)
  PGLITE_DIR         else an embedded PGlite in this directory
                     else an in-memory PGlite (a dry run: nothing is kept)
Running it again applies nothing new. Exits 1, naming the database, when it cannot.
`;
try {
  if (parseArgs({ options: { help: { type: 'boolean', short: 'h', default: false } } }).values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
} catch (err) {
  process.stderr.write(`migrate: ${(err as Error).message}\n${HELP}`);
  process.exit(64);
}

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
