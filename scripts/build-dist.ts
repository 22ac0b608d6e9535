/**
 * Builds what the production image runs, into dist/ (the Dockerfile's build stage runs this):
 *   dist/server, dist/shared, dist/scripts  the server and the operator tools (migrate, token),
 *                                           compiled by tsc with tsconfig.build.json
 *   dist/migrations                         the SQL the migrator applies
 *   dist/web/dist                           the dashboard (type-checked and bundled by build-web.ts)
 * dist/ mirrors the repository's layout, so migrator.ts and static.ts find migrations/ and web/dist
 * at the same place relative to themselves whether they run from source (tsx) or compiled (node).
 *   tsx scripts/build-dist.ts
 */
import { execFileSync } from 'node:child_process';
import { cp, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { buildWeb } from './build-web.js';

const ROOT = resolve(import.meta.dirname, '..');
const DIST = resolve(ROOT, 'dist');

async function buildDist(): Promise<void> {
  // From scratch: a file left by a source since deleted would otherwise ship in the image.
  await rm(DIST, { recursive: true, force: true });
  execFileSync(process.execPath, [resolve(ROOT, 'node_modules/typescript/bin/tsc'), '-p', resolve(ROOT, 'tsconfig.build.json')], {
    stdio: 'inherit',
  });
  await buildWeb({ typecheck: true });
  await cp(resolve(ROOT, 'migrations'), resolve(DIST, 'migrations'), { recursive: true });
  await cp(resolve(ROOT, 'web/dist'), resolve(DIST, 'web/dist'), { recursive: true });
}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(
    'Usage: npm run build:dist\n\nCompiles the server, migrate and token to dist/ and copies migrations/ and the built dashboard beside them.\n',
  );
} else {
  buildDist().then(
    () => console.log(`dist: built ${DIST} (start it with: node dist/server/main.js)`),
    (err: unknown) => {
      console.error(`dist: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
