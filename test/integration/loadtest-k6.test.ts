import { readdirSync, readFileSync } from 'node:fs';
import { transform } from 'esbuild';
import { describe, expect, it } from 'vitest';

// k6 is not installable here: CI proves the scripts parse and keep their thresholds (and loadtest-k6-vus.test.ts runs them as k6 would).
const dir = new URL('../../loadtest/k6/', import.meta.url);
const scripts = readdirSync(dir).filter((f) => f.endsWith('.js'));

describe('k6 scripts', () => {
  it('exist', () => expect(scripts.sort()).toEqual(['http-read.js', 'http-transition.js', 'lib.js', 'ws-fanout.js']));

  it.each(scripts)('%s parses as an ES module', async (file) => {
    const source = readFileSync(new URL(file, dir), 'utf8');
    await expect(transform(source, { loader: 'js', format: 'esm', target: 'es2020' })).resolves.toBeDefined();
    for (const [, spec] of source.matchAll(/from '([^']+)'/g)) expect(spec).toMatch(/^(k6(\/[a-z]+)?|\.\/lib\.js)$/);
  });

  it.each(scripts.filter((f) => f.startsWith('http-')))('%s has the latency and error-rate thresholds', (file) => {
    const source = readFileSync(new URL(file, dir), 'utf8');
    // The latency bound is P95_MS, 500 ms unless a run sets it.
    expect(source).toContain('const P95_MS = Number(__ENV.P95_MS || 500);');
    expect(source).toMatch(/http_req_duration: \[`p\(95\)<\$\{P95_MS\}`/);
    expect(source).toContain("http_req_failed: ['rate<0.01']");
  });

  it.each(scripts.filter((f) => f !== 'lib.js'))('%s fails the run when its checks fail, and makes its run in setup()', (file) => {
    const source = readFileSync(new URL(file, dir), 'utf8');
    expect(source).toContain("checks: ['rate>0.99']");
    expect(source).toMatch(/export function setup\(\)/);
  });
});
