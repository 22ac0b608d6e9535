import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fluxo-config-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a configuration error', () => {
  it('stops the process with one line and no stack on a bad value', async () => {
    const err = await run(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, PORT: 'eighty' },
    }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(78);
    expect(err?.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^fluxo: invalid configuration — PORT: /)]);
  });

  it('in RATE_LIMITS stops the start like any other (exit 78, one line) before the database is opened', async () => {
    // Embedded PGlite creates its directory when it opens: still absent after the exit means never opened.
    const data = join(dir, 'data');
    const err = await run(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PORT: '0', PGLITE_DIR: data, RATE_LIMITS: 'http:wrte=5/1' },
    }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(78);
    expect(err?.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^fluxo: invalid configuration — RATE_LIMITS: "http:wrte=5\/1" names unknown event "http:wrte"; known: /),
    ]);
    expect(existsSync(data)).toBe(false);
  });
});
