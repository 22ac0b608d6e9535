import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionsResult } from '../../loadtest/connections.js';
import type { HttpResult } from '../../loadtest/http.js';
import type { FluxoNode } from '../../server/app.js';
import { startNode, TEST_SECRET } from '../harness/node.js';

const run = promisify(execFile);
const cli = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'loadtest/cli.ts', ...args], {
    env: { ...process.env, JWT_SECRET: TEST_SECRET },
    timeout: 60_000,
  });

let node: FluxoNode;
const dir = mkdtempSync(join(tmpdir(), 'fluxo-loadtest-'));

beforeAll(async () => {
  node = await startNode({
    RATE_LIMITS: 'handshake=100000/1,process:transition=100000/1,http:write=100000/1,http:read=100000/1',
  });
});
afterAll(async () => {
  await node?.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

// `npm run loadtest` end to end, briefly, so the entry point cannot rot.
describe('npm run loadtest', () => {
  it('prints help', async () => {
    const { stdout } = await cli(['--help']);
    expect(stdout).toContain('Usage: npm run loadtest');
    for (const s of ['health', 'read', 'transition', 'transition-rmw', 'fanout', 'connections']) expect(stdout).toContain(s);
  });

  it.each(['health', 'transition-rmw'])('runs %s and writes JSON', async (scenario) => {
    const out = join(dir, `${scenario}.json`);
    const { stdout } = await cli([scenario, '--url', node.url, '--duration', '1', '--connections', '2', '--quiet', '--out', out]);
    expect(stdout).toMatch(/req\/s/);
    const r = JSON.parse(readFileSync(out, 'utf8')) as HttpResult;
    expect(r.requests).toBeGreaterThan(0);
    expect(Object.keys(r.statuses)).toEqual(['200']);
  });

  it('runs connections and reports RSS per socket', async () => {
    const out = join(dir, 'connections.json');
    await cli(['connections', '--url', node.url, '--count', '50', '--hold', '0', '--quiet', '--out', out]);
    const r = JSON.parse(readFileSync(out, 'utf8')) as ConnectionsResult;
    expect(r.connected).toBe(50);
    expect(r.successRate).toBe(1);
    expect(r.rssAfterBytes).toBeGreaterThan(0);
  });
});
