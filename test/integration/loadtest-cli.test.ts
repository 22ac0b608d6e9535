import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionsResult } from '../../loadtest/connections.js';
import type { HttpResult } from '../../loadtest/http.js';
import { TEST_SECRET } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { startNode } from '../harness/node.js';

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
  await node?.close();
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
    const before = new Date().toISOString();
    const { stdout } = await cli([scenario, '--url', node.url, '--duration', '1', '--connections', '2', '--quiet', '--out', out]);
    expect(stdout).toMatch(/req\/s/);
    expect(stdout).toContain('thresholds met');
    const r = JSON.parse(readFileSync(out, 'utf8')) as HttpResult;
    expect(r.requests).toBeGreaterThan(0);
    expect(r.statuses).toEqual({ '200': r.requests });
    // What autocannon and k6 users find in a result.
    expect(r.startedAt >= before && r.finishedAt >= r.startedAt).toBe(true);
    expect(r.tool).toMatchObject({
      name: 'fluxo-loadtest',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      engine: expect.stringMatching(/^autocannon \d/),
    });
    expect(r.tool.commit).toMatch(/^[0-9a-f]{40}$|^unknown$/);
    expect(r.target).toEqual({ url: node.url, node: node.config.nodeId });
    expect({ errors: r.errors, timeouts: r.timeouts, errorsByKind: r.errorsByKind, non2xx: r.non2xx }).toEqual({
      errors: 0,
      timeouts: 0,
      errorsByKind: {},
      non2xx: 0,
    });
    expect(r.bytes.received).toBeGreaterThan(r.requests * 50);
    expect(r.thresholds.length).toBeGreaterThan(0);
    expect(r.thresholds.every((t) => t.ok)).toBe(true);
    // Latency to the µs, every response counted, the percentiles in order and none above max.
    const l = r.latencyMs;
    expect(l.count).toBe(r.requests);
    expect([l.p50, l.p90, l.p99, l.p999, l.max].some((v) => !Number.isInteger(v))).toBe(true);
    expect(l.min).toBeLessThanOrEqual(l.p50);
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p90).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.p999);
    expect(l.p999).toBeLessThanOrEqual(l.max);
    if (scenario === 'transition-rmw') {
      // A GET and a POST make one operation, with its own latency (longer than either request).
      const op = r.operations!;
      expect(op.kind).toBe('read-modify-write');
      expect(op.failed).toBe(0);
      expect(op.count).toBe(op.ok);
      expect(Math.abs(r.requests - 2 * op.count)).toBeLessThanOrEqual(2);
      expect(op.latencyMs.count).toBe(op.count);
      expect(op.latencyMs.p50).toBeGreaterThan(l.p50);
      expect(stdout).toMatch(/read-modify-write operations \(GET \+ POST\)/);
    } else expect(r.operations).toBeUndefined();
  });

  it('exits 99 when a threshold is not met, and says which', async () => {
    const out = join(dir, 'strict.json');
    const err = await cli([
      'health',
      '--url',
      node.url,
      '--duration',
      '1',
      '--connections',
      '1',
      '--quiet',
      '--out',
      out,
      '--max-p99',
      '0',
    ]).then(
      () => null,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(99);
    expect(err?.stdout).toMatch(/✗ request latency p99 ≤ 0 ms \([\d.]+ ms\)\s+NOT MET/);
    const r = JSON.parse(readFileSync(out, 'utf8')) as HttpResult;
    expect(r.thresholds.find((t) => t.name === 'request latency p99')?.ok).toBe(false);
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
