import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpResult } from '../../loadtest/http.js';
import { api } from '../../scripts/topology/api.js';
import { type NginxHandle, startNginx } from '../../scripts/topology/cluster.js';
import { freePort } from '../../scripts/topology/ports.js';
import { TEST_SECRET } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { startNode } from '../harness/node.js';

// The scripts a user runs by hand, as real processes: every one answers --help, the tools that talk
// to a node find it in one documented place (--url, else FLUXO_URL, else http://localhost:8080) and
// say so clearly when nothing answers there; the cluster harness's nginx takes large bodies as root.

const ROOT = join(import.meta.dirname, '../..');
const exec = promisify(execFile);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tsx <file> …args` from the repo root; never rejects, bounded in time. */
async function tool(file: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Ran> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['--import', 'tsx', file, ...args], {
      cwd: ROOT,
      env: { ...process.env, FLUXO_URL: undefined, ...env } as NodeJS.ProcessEnv,
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const KEY = 'ops-tools-publish-key-0123456789';
let node: FluxoNode;
beforeAll(async () => {
  node = await startNode({ PUBLISH_API_KEY: KEY, RATE_LIMITS: 'http:write=100000/1,http:read=100000/1,publish=100000/1' });
});
afterAll(() => node?.close());

describe('every script answers --help', () => {
  const both = ['--help', '-h'];
  it.each([
    ['seed', 'scripts/seed.ts', both],
    ['token', 'scripts/token.ts', both],
    ['migrate', 'scripts/migrate.ts', both],
    ['cluster', 'scripts/cluster.ts', both],
    ['chaos', 'scripts/chaos.ts', both],
    ['fuzz', 'scripts/fuzz.ts', ['--help']],
    ['loadtest', 'loadtest/cli.ts', both],
    ['bench', 'loadtest/bench/run.ts', both],
  ])('npm run %s -- --help', async (name, file, flags: string[]) => {
    for (const flag of flags) {
      // A database that is not there: --help must answer without touching anything.
      const r = await tool(file, [flag], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
      expect({ flag, code: r.code, stderr: r.stderr }).toEqual({ flag, code: 0, stderr: '' });
      expect(r.stdout).toMatch(new RegExp(`^usage: npm run ${name}\\b`, 'i'));
    }
  });
});

describe('seed and loadtest find the node at --url, else FLUXO_URL, else http://localhost:8080', () => {
  it('seed fills the tenant of the node named by FLUXO_URL', async () => {
    const r = await tool('scripts/seed.ts', ['--tenant', 'ops-tools', '--processes', '3'], {
      FLUXO_URL: node.url,
      JWT_SECRET: TEST_SECRET,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`open ${node.url}/`);
  });

  it('loadtest runs against the node named by FLUXO_URL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fluxo-ops-tools-'));
    try {
      const out = join(dir, 'health.json');
      const r = await tool('loadtest/cli.ts', ['health', '--duration', '1', '--connections', '1', '--quiet', '--out', out], {
        FLUXO_URL: node.url,
        JWT_SECRET: TEST_SECRET,
      });
      expect(r.code).toBe(0);
      const result = JSON.parse(await readFile(out, 'utf8')) as HttpResult;
      expect(result.options.url).toBe(node.url);
      expect(result.requests).toBeGreaterThan(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['seed', 'scripts/seed.ts', []],
    ['loadtest', 'loadtest/cli.ts', ['health', '--duration', '1']],
  ])('%s says clearly that nothing answers at a dead URL (no bare "fetch failed")', async (_name, file, args: string[]) => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    for (const how of ['env', 'flag'] as const) {
      const r = await tool(file, how === 'flag' ? [...args, '--url', dead] : args, how === 'env' ? { FLUXO_URL: dead } : {});
      expect(r.code, r.stderr).toBe(69);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`nothing answers at ${dead} (connection refused: nothing listens there)`);
      expect(r.stderr).toContain('FLUXO_URL');
      expect(r.stderr).not.toContain('fetch failed');
    }
  });

  it('loadtest says when what answers is not a Fluxo node', async () => {
    const r = await tool('loadtest/cli.ts', ['health', '--duration', '1', '--url', `${node.url}/nope`]);
    expect(r.code).toBe(69);
    expect(r.stderr).toContain(`${node.url}/nope/health answered HTTP 404, not a Fluxo node`);
  });
});

describe('npm run cluster as root', () => {
  it('nginx of the harness passes request bodies over 16 KB (its temp files are writable by its workers)', async () => {
    // As startCluster lays it out: nginx's directory inside the cluster's mkdtemp directory (0700).
    const dir = await mkdtemp(join(tmpdir(), 'fluxo-ops-tools-cluster-'));
    let nginx: NginxHandle | null = null;
    try {
      nginx = await startNginx(join(dir, 'nginx'), [`127.0.0.1:${node.port}`]);
      for (const bytes of [1000, 20_000, 60_000]) {
        const res = await api(nginx.url, 'POST', '/api/publish', {
          headers: { authorization: `Bearer ${KEY}` },
          body: { tenant: 'ops-tools', room: 'tenant', type: 'big', data: { pad: 'x'.repeat(bytes) } },
        });
        expect({ bytes, status: res.status }).toEqual({ bytes, status: 201 });
      }
    } finally {
      await nginx?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
