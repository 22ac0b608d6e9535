/**
 * Builds the SDK package (`@fluxo/sdk`, shared/sdk/package.json) and packs it into a tarball that
 * `npm install ./fluxo-sdk-<version>.tgz` takes:
 *   tsx scripts/pack-sdk.ts [--out DIR]     (DIR defaults to .tmp/sdk)
 * One ESM build serves browsers and Node (the SDK uses neither Node's modules nor the DOM beyond
 * fetch and timers: shared/sdk/tsconfig.json type-checks it without Node's types), with its
 * declarations bundled into one .d.ts (tsdown, on Rolldown). shared/protocol.ts and
 * shared/errors.ts are inlined, so the package has no import outside itself but socket.io-client,
 * its one dependency. The package is staged in a temporary directory with the repository's
 * LICENSE, so the source tree gets no build output and two builds at once do not collide.
 *
 * The build reads a copy of shared/ in which contract.ts is replaced by its declarations with the
 * request types written out (scripts/sdk-contract-dts.ts): the SDK imports the contract as types
 * only, and its declarations must not need zod, which the contract derives those types from. The
 * copy is under .tmp/ in the repository, where socket.io-client's types resolve. A built file that
 * still mentions zod fails the build.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'tsdown';
import { contractDeclarations } from './sdk-contract-dts.js';

const ROOT = resolve(import.meta.dirname, '..');
const SDK = resolve(ROOT, 'shared/sdk');

export interface PackedSdk {
  /** Absolute path of the tarball. */
  tarball: string;
  name: string;
  version: string;
  /** Paths inside the package, as npm packed them. */
  files: string[];
}

/** Builds and packs the SDK into `outDir`; resolves with the tarball. */
export async function packSdk(outDir: string): Promise<PackedSdk> {
  const stage = await mkdtemp(join(tmpdir(), 'fluxo-sdk-'));
  await mkdir(join(ROOT, '.tmp'), { recursive: true });
  const sources = await mkdtemp(join(ROOT, '.tmp', 'sdk-src-'));
  try {
    const sdk = await stageSources(sources);
    await build({
      cwd: sdk,
      config: false,
      entry: { index: join(sdk, 'index.ts') },
      outDir: join(stage, 'dist'),
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      tsconfig: join(sdk, 'tsconfig.json'),
      dts: true,
      hash: false,
      fixedExtension: false,
      clean: true,
      // The built code may import socket.io-client and nothing else: no Node module, no file outside the package.
      deps: { onlyImport: ['socket.io-client'], onlyBundle: false },
      publint: false,
      exports: false,
      report: false,
      logLevel: 'warn',
      // A slow build on a busy machine (parallel tests) is not worth a warning.
      checks: { bundlerTimings: false },
    });
    for (const file of ['index.js', 'index.d.ts']) {
      if (/\bzod\b/.test(await readFile(join(stage, 'dist', file), 'utf8'))) throw new Error(`dist/${file} of the SDK mentions zod`);
    }
    for (const file of ['package.json', 'README.md']) await copyFile(join(SDK, file), join(stage, file));
    await copyFile(join(ROOT, 'LICENSE'), join(stage, 'LICENSE'));
    await mkdir(outDir, { recursive: true });
    const out = execFileSync('npm', ['pack', stage, '--pack-destination', outDir, '--json', '--ignore-scripts'], { encoding: 'utf8' });
    const [packed] = JSON.parse(out) as { filename: string; name: string; version: string; files: { path: string }[] }[];
    if (!packed) throw new Error(`npm pack said nothing: ${out}`);
    return {
      tarball: resolve(outDir, packed.filename),
      name: packed.name,
      version: packed.version,
      files: packed.files.map((f) => f.path).sort(),
    };
  } finally {
    await rm(stage, { recursive: true, force: true });
    await rm(sources, { recursive: true, force: true });
  }
}

/** Copies shared/ (and the tsconfig the SDK's extends) into `dir`, contract.ts swapped for its SDK declarations; returns the SDK's folder there. */
async function stageSources(dir: string): Promise<string> {
  await cp(join(ROOT, 'shared'), join(dir, 'shared'), { recursive: true });
  await copyFile(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  await rm(join(dir, 'shared/contract.ts'));
  await writeFile(join(dir, 'shared/contract.d.ts'), contractDeclarations(ROOT));
  return join(dir, 'shared/sdk');
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log('usage: npm run sdk:pack [-- --out DIR]   builds shared/sdk and packs it into DIR (default .tmp/sdk)');
    process.exit(0);
  }
  const outDir = resolve(values.out ?? join(ROOT, '.tmp/sdk'));
  const { version } = JSON.parse(await readFile(join(SDK, 'package.json'), 'utf8')) as { version: string };
  const packed = await packSdk(outDir);
  console.log(`${packed.name}@${version}: ${packed.tarball}\n  ${packed.files.join('\n  ')}`);
}
