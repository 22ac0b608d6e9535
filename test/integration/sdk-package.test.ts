import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as esbuild from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PackedSdk, packSdk } from '../../scripts/pack-sdk.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { startNode } from '../harness/node.js';

const run = promisify(execFile);
const CONSUMER = resolve(import.meta.dirname, '../sdk-consumer');

let node: FluxoNode;
let dir: string;
let app: string;
let packed: PackedSdk;

beforeAll(async () => {
  // Outside the repository: nothing may resolve from its node_modules, only from what the tarball brought.
  dir = await mkdtemp(join(tmpdir(), 'fluxo-sdk-consumer-'));
  app = join(dir, 'app');
  [node, packed] = await Promise.all([startNode(), packSdk(join(dir, 'pack')), cp(CONSUMER, app, { recursive: true })]);
  // From the npm cache when it has them (the repository's own install put socket.io-client, typescript and @types/node there).
  await run('npm', ['install', packed.tarball, '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: app });
}, 120_000);
afterAll(async () => {
  await node?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The module specifiers a built file imports (static, dynamic and type imports). */
function importsOf(code: string): string[] {
  const found = new Set<string>();
  for (const m of code.matchAll(/\b(?:from|import)\s*\(?\s*["']([^"']+)["']/g)) found.add(m[1]!);
  return [...found].sort();
}

describe('SDK package', () => {
  it('packs its build, licence, README and manifest only, and imports nothing outside itself but socket.io-client', async () => {
    expect(packed.name).toBe('@fluxo/sdk');
    expect(packed.files).toEqual(['LICENSE', 'README.md', 'dist/index.d.ts', 'dist/index.js', 'package.json']);
    const installed = join(app, 'node_modules/@fluxo/sdk');
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8'));
    expect(manifest).toMatchObject({
      license: 'MIT',
      type: 'module',
      exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } },
      dependencies: { 'socket.io-client': expect.any(String) },
    });
    expect(importsOf(await readFile(join(installed, 'dist/index.js'), 'utf8'))).toEqual(['socket.io-client']);
    expect(importsOf(await readFile(join(installed, 'dist/index.d.ts'), 'utf8'))).toEqual(['socket.io-client']);
  });

  it("type-checks an application against the package's declarations, with NodeNext and Bundler resolution", async () => {
    const tsc = join(app, 'node_modules/typescript/bin/tsc');
    // tsconfig.json also checks the shipped .d.ts itself (skipLibCheck off).
    const results = await Promise.all(
      ['tsconfig.json', 'tsconfig.bundler.json'].map((project) =>
        run(process.execPath, [tsc, '-p', project], { cwd: app }).then(
          () => ({ project, errors: '' }),
          (err: { stdout?: string; message: string }) => ({ project, errors: err.stdout || err.message }),
        ),
      ),
    );
    expect(results).toEqual([
      { project: 'tsconfig.json', errors: '' },
      { project: 'tsconfig.bundler.json', errors: '' },
    ]);
  });

  it('bundles for browsers (no Node module reachable from the package)', async () => {
    const result = await esbuild.build({
      absWorkingDir: app,
      entryPoints: ['src/browser.js'],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    expect(result.outputFiles[0]!.text).toContain('protocol_mismatch');
  });

  it('runs against a real node: connects, subscribes, creates and moves a card over HTTP, gets the event, types the errors', async () => {
    const admin = await token({ sub: 'ada', tid: 'consumer', role: 'admin' });
    const viewer = await token({ sub: 'vic', tid: 'consumer', role: 'viewer' });
    const { stdout } = await run(process.execPath, ['src/main.js', node.url, admin, viewer], { cwd: app, timeout: 20_000 });
    const seen = JSON.parse(stdout.trim());
    expect(seen.sdkProtocol).toBe(PROTOCOL_VERSION);
    expect(seen.serverProtocol).toBe(PROTOCOL_VERSION);
    expect(seen.delivered).toEqual([
      { type: 'process.created', processId: seen.cardId, toStage: 'todo' },
      { type: 'process.transitioned', processId: seen.cardId, toStage: 'doing' },
    ]);
    expect(seen.moved).toMatchObject({ stage: 'doing', version: 2 });
    expect(seen.errors).toEqual([
      { code: 'version_conflict', status: 409, retryable: false },
      // Over the socket: no HTTP status.
      { code: 'invalid_transition', status: null, retryable: false },
      { code: 'forbidden', status: 403, retryable: false },
      { code: 'not_found', status: 404, retryable: false },
    ]);
    expect(seen.currentVersion).toBe(2);
    expect(seen.page).toEqual({ ids: [seen.cardId], total: 1, nextCursor: null });
    expect(seen.history).toEqual(['process.created', 'process.transitioned']);
  });
});
