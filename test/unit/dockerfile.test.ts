import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { describe, expect, it } from 'vitest';
import { buildStages, dockerignore } from '../../scripts/dockerfile-local.js';

// scripts/dockerfile-local.ts stands in for `docker build` in CI (npm run smoke:dist builds and runs
// the image with it). These pin down the parts where it could pass what Docker would not.

const ROOT = join(import.meta.dirname, '../..');
const MAJOR = process.versions.node.split('.')[0];
// Parsed as scripts/dockerfile-local.ts parses it.
const dockerfile = async () => DockerfileParser.parse(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));

describe('.dockerignore as Docker reads it', () => {
  it('re-includes with `!`, the last matching rule deciding, for a path or any folder above it', () => {
    const excluded = dockerignore('*\n!server\nserver/secret\n!server/secret/keep.ts\n**/*.log\n');
    expect(excluded('server/app.ts')).toBe(false);
    expect(excluded('server/secret/key.pem')).toBe(true);
    expect(excluded('server/secret/keep.ts')).toBe(false);
    expect(excluded('server/deep/debug.log')).toBe(true);
    expect(excluded('README.md')).toBe(true);
    expect(excluded('node_modules/x/index.js')).toBe(true);
    // Case-sensitive, as Docker is on Linux: `!server` does not let `Server` in.
    expect(excluded('Server/app.ts')).toBe(true);
  });

  it("lets in everything the Dockerfile copies from the context, and keeps out the machine's own files", async () => {
    const excluded = dockerignore(await readFile(join(ROOT, '.dockerignore'), 'utf8'));
    const sources = (await dockerfile())
      .getCOPYs()
      .filter((c) => !c.getFromFlag())
      .flatMap((c) =>
        c
          .getArguments()
          .slice(0, -1)
          .map((a) => a.getValue()),
      );
    expect(sources).toContain('server');
    for (const src of sources) expect(excluded(src), src).toBe(false);
    for (const path of [
      'node_modules/tsx/package.json',
      'dist/server/main.js',
      'web/dist/index.html',
      'shared/sdk/node_modules/x/index.js',
      '.env',
      '.git/config',
      'test/unit/x.ts',
      'scripts/topology/cluster.ts',
    ]) {
      expect(excluded(path), path).toBe(true);
    }
  });
});

describe('the Dockerfile', () => {
  it('ends in a stage that runs node on the compiled server, unprivileged, with a health check on /health', async () => {
    const df = await dockerfile();
    const ins = df.getInstructions();
    const last = ins.slice(ins.findLastIndex((i) => i.getKeyword() === 'FROM'));
    const arg = (k: string) => last.find((i) => i.getKeyword() === k)?.getArgumentsContent();
    expect(JSON.parse(arg('CMD') ?? 'null')).toEqual(['node', 'dist/server/main.js']);
    expect(arg('USER')).toBe('node');
    expect(arg('HEALTHCHECK')).toMatch(/CMD \[.*\/health/);
    // Every stage on the same base: native modules are installed for the libc they run on.
    expect(new Set(df.getFROMs().map((f) => f.getImage()))).toEqual(new Set(['node:22-bookworm-slim']));
  });
});

describe('buildStages refuses what it cannot stand in for', () => {
  const attempt = async (dockerfile: string, files: Record<string, string> = {}) => {
    const dir = await mkdtemp(join(tmpdir(), 'fluxo-dockerfile-'));
    try {
      for (const [name, text] of Object.entries({ ...files, Dockerfile: dockerfile })) await writeFile(join(dir, name), text);
      return await buildStages({ context: dir, out: dir });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('a CMD in shell form (a shell as PID 1 does not pass SIGTERM on)', async () => {
    await expect(attempt(`FROM node:${MAJOR}-bookworm-slim\nCMD node dist/server/main.js\n`)).rejects.toThrow(/exec form/);
  });

  it('an instruction it does not know', async () => {
    await expect(attempt(`FROM node:${MAJOR}-bookworm-slim\nVOLUME /data\n`)).rejects.toThrow(/VOLUME is not understood/);
  });

  it('a flag it does not know, on an instruction that takes none or on one that takes others', async () => {
    await expect(attempt(`FROM node:${MAJOR}-bookworm-slim\nRUN --mount=type=cache,target=/x true\n`)).rejects.toThrow(
      /RUN --mount is not supported/,
    );
    await expect(attempt(`FROM node:${MAJOR}-bookworm-slim\nCOPY --chown=node x /x\n`, { x: '' })).rejects.toThrow(
      /COPY --chown is not supported/,
    );
  });

  it('a RUN with a here-document', async () => {
    await expect(attempt(`FROM node:${MAJOR}-bookworm-slim\nRUN <<EOF\ntrue\nEOF\n`)).rejects.toThrow(/here-document/);
  });

  it('a base image of another Node major than this one', async () => {
    await expect(attempt(`FROM node:${Number(MAJOR) + 2}-bookworm-slim\n`)).rejects.toThrow(/needs Node/);
  });

  it('a COPY of something .dockerignore leaves out', async () => {
    const files = { '.dockerignore': '.env\n', '.env': 'SECRET=x\n' };
    await expect(attempt(`FROM node:${MAJOR}-bookworm-slim\nWORKDIR /app\nCOPY .env ./\n`, files)).rejects.toThrow(
      /excluded by \.dockerignore/,
    );
  });

  it('joins continuation lines and skips comments, as Docker parses', async () => {
    const stages = await attempt(
      `# a comment\nFROM node:${MAJOR}-bookworm-slim AS one\nENV A=1 \\\n# inside\n  B="two words"\nCMD ["node", \\\n  "x.js", "a b"]\n` +
        `HEALTHCHECK --interval=5s --retries=2 \\\n  CMD ["node", "-e", "1 + 1"]\n`,
    );
    expect(stages[0]).toMatchObject({
      name: 'one',
      env: { A: '1', B: 'two words' },
      cmd: ['node', 'x.js', 'a b'],
      healthcheck: { options: { interval: '5s', retries: '2' }, cmd: ['node', '-e', '1 + 1'] },
    });
  });
});
