/**
 * Builds the dashboard: type-checks web/ (esbuild does not), bundles web/src/main.ts with the SDK
 * and socket.io-client into web/dist/assets/app.js, copies the CSS, the favicon and index.html.
 *   tsx scripts/build-web.ts [--no-typecheck]
 * Every file is written to a temporary name and renamed into place, so a node serving web/dist
 * (or a second build running at the same time, as in parallel browser tests) never serves half a file.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as esbuild from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
const SRC = resolve(ROOT, 'web/src');
const OUT = resolve(ROOT, 'web/dist');
const BUNDLE = resolve(OUT, 'assets/app.js');

async function writeAtomic(path: string, contents: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, contents);
  await rename(tmp, path);
}

export async function buildWeb(opts: { typecheck?: boolean; minify?: boolean } = {}): Promise<void> {
  if (opts.typecheck !== false) {
    execFileSync(process.execPath, [resolve(ROOT, 'node_modules/typescript/bin/tsc'), '-p', resolve(ROOT, 'web/tsconfig.json')], {
      stdio: 'inherit',
    });
  }
  await mkdir(resolve(OUT, 'assets'), { recursive: true });
  const result = await esbuild.build({
    entryPoints: [resolve(SRC, 'main.ts')],
    outfile: BUNDLE,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    sourcemap: true,
    minify: opts.minify ?? true,
    legalComments: 'none',
    logLevel: 'warning',
    write: false,
  });
  for (const file of result.outputFiles) await writeAtomic(file.path, file.contents);
  await writeAtomic(resolve(OUT, 'assets/app.css'), await readFile(resolve(SRC, 'style.css')));
  await writeAtomic(resolve(OUT, 'favicon.svg'), await readFile(resolve(SRC, 'favicon.svg')));
  await writeAtomic(resolve(OUT, 'index.html'), await readFile(resolve(SRC, 'index.html')));
}

/** Newest modification time of the files under `dir`. */
async function newest(dir: string): Promise<number> {
  let max = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    max = Math.max(max, entry.isDirectory() ? await newest(path) : (await stat(path)).mtimeMs);
  }
  return max;
}

/** Builds unless web/dist is newer than every source the page is made of (tests call this). */
export async function buildWebIfStale(): Promise<void> {
  const built = await stat(BUNDLE).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const sources = Math.max(await newest(SRC), await newest(resolve(ROOT, 'shared')));
  if (built < sources) await buildWeb({ typecheck: false });
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  buildWeb({ typecheck: !process.argv.includes('--no-typecheck') }).then(
    () => console.log(`web: built ${OUT}`),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
