import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** The few raw-client operations the runner needs; a migration file holds several statements. */
export interface MigrationTx {
  /** Runs a multi-statement script (simple query protocol). */
  exec(script: string): Promise<void>;
  query(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
}
export interface MigrationClient {
  transaction<T>(fn: (tx: MigrationTx) => Promise<T>): Promise<T>;
}

// Two folders up from this module, from source (server/store/) and compiled (dist/server/store/) alike:
// scripts/build-dist.ts copies migrations/ into dist/ for that. `npm run smoke:dist` runs the compiled one.
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Any constant: serialises migrators of several nodes starting at once. */
const LOCK_KEY = 7_357_001;

/**
 * Applies every `*.sql` file of `dir` not yet recorded in `fluxo_migrations`, in name order, each in
 * its own transaction together with its record. Returns the names applied.
 */
export async function runMigrations(client: MigrationClient, dir = DEFAULT_MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const applied: string[] = [];
  await client.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    await tx.exec('CREATE TABLE IF NOT EXISTS fluxo_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
  });
  for (const file of files) {
    const script = await readFile(`${dir}/${file}`, 'utf8');
    await client.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
      const done = await tx.query('SELECT 1 FROM fluxo_migrations WHERE name = $1', [file]);
      if (done.length > 0) return;
      try {
        await tx.exec(script);
      } catch (err) {
        throw new Error(`migration ${file} failed: ${(err as Error).message}`, { cause: err });
      }
      await tx.query('INSERT INTO fluxo_migrations (name) VALUES ($1)', [file]);
      applied.push(file);
    });
  }
  return applied;
}
