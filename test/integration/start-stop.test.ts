import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/topology/ports.js';
import type { FluxoNode } from '../../server/app.js';
import { eventually, startNode } from '../harness/node.js';

// `npm start` and `node server/main.ts` as an operator runs them: signals reach the server, which
// drains and exits 0 leaving nothing behind; a port already taken is a start-up error naming it.

const ROOT = join(import.meta.dirname, '../..');

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawned in a process group of its own (as a shell does), so a test can signal the group and clean all of it up. */
function start(cmd: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    detached: true,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      SHUTDOWN_GRACE_MS: '3000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, out: () => out, err: () => err, exited };
}

/** Kills whatever is left of the group (the server an old `npm start` left behind included). */
function killGroup(p: Proc): void {
  try {
    process.kill(-p.child.pid!, 'SIGKILL');
  } catch {}
}

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))]);

/** True when a TCP connect to the port is refused: nothing listens there. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** The server's JSON log lines (npm and the web build print plain lines too). */
const logs = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; signal?: string });

async function npmStart(): Promise<{ p: Proc; port: number }> {
  const port = await freePort();
  const p = start('npm', ['start'], { PORT: String(port) });
  await eventually(
    async () => {
      if (p.child.exitCode !== null) throw new Error(`npm start exited: ${p.err()}`);
      expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);
    },
    45_000,
    200,
  );
  return { p, port };
}

describe('npm start', () => {
  it('passes SIGTERM to the server: it drains, npm exits 0, nothing is left listening', async () => {
    const { p, port } = await npmStart();
    try {
      process.kill(p.child.pid!, 'SIGTERM');
      expect(await within(p.exited, 15_000, 'npm start after SIGTERM')).toEqual({ code: 0, signal: null });
      const msgs = logs(p.out()).map((l) => l.msg);
      expect(msgs).toEqual(expect.arrayContaining(['shutdown requested', 'draining', 'stopped']));
      expect(await refused(port)).toBe(true);
    } finally {
      killGroup(p);
    }
  });

  it('on Ctrl-C (SIGINT to the whole process group, so the server gets it twice) drains once and stops', async () => {
    const { p, port } = await npmStart();
    try {
      process.kill(-p.child.pid!, 'SIGINT');
      await within(p.exited, 15_000, 'npm start after Ctrl-C');
      const lines = logs(p.out());
      expect(lines.filter((l) => l.msg === 'shutdown requested')).toHaveLength(1);
      expect(lines.map((l) => l.msg)).toContain('stopped');
      expect(await refused(port)).toBe(true);
    } finally {
      killGroup(p);
    }
  });
});

describe('a port already taken', () => {
  let holder: FluxoNode;
  beforeAll(async () => {
    // A fixed port, as in production: uWS sets SO_REUSEPORT only then, and that let a second node share it.
    holder = await startNode({ HOST: '127.0.0.1', PORT: String(await freePort()) });
  });
  afterAll(() => holder?.close());

  it('is a start-up error naming the port (exit 69), and the node that holds it keeps it', async () => {
    const p = start(process.execPath, ['--import', 'tsx', 'server/main.ts'], { PORT: String(holder.port) });
    try {
      // Before the fix the second node said "fluxo listening" and shared the port (SO_REUSEPORT): fail at once then.
      const listening = (async () => {
        await eventually(() => expect(p.out()).toContain('"fluxo listening"'), 30_000, 100);
        return 'listening' as const;
      })();
      listening.catch(() => {});
      const outcome = await within(Promise.race([p.exited, listening]), 30_000, 'second node');
      expect(outcome).toEqual({ code: 69, signal: null });
      expect(p.err().trim().split('\n')).toEqual([
        `fluxo: cannot start — port ${holder.port} is already in use on 127.0.0.1: another process listens there (stop it, or set PORT to a free port)`,
      ]);
      expect((await fetch(`${holder.url}/health`)).status).toBe(200);
    } finally {
      killGroup(p);
    }
  });
});
