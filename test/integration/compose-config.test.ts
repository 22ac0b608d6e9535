import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// compose.yaml as docker-compose itself reads it: a process, so not in the unit tier (what the file
// says is test/unit/compose.test.ts; its monitoring profile is test/integration/monitoring-tools.test.ts).
// No daemon is needed: `config` only parses and validates.

const ROOT = join(import.meta.dirname, '../..');
const COMPOSE = join(ROOT, 'compose.yaml');

describe('compose.yaml as docker-compose reads it', () => {
  it('passes `docker-compose -f compose.yaml config -q`', async (ctx) => {
    const bin = ['/usr/bin/docker-compose', '/usr/local/bin/docker-compose'].find((p) => existsSync(p));
    if (!bin) {
      ctx.skip('docker-compose is not installed (apt-get install -y docker-compose); CI runs this check in .ci/run');
      return;
    }
    const { stderr } = await promisify(execFile)(bin, ['-f', COMPOSE, 'config', '-q'], { cwd: ROOT, timeout: 30_000 });
    expect(stderr.trim()).toBe('');
  });
});
