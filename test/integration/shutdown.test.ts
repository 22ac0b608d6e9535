import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/topology/ports.js';
import { TEST_SECRET, token } from '../../scripts/topology/tokens.js';
import { client, eventually } from '../harness/node.js';

describe('graceful shutdown of a real process', () => {
  it('on SIGTERM tells clients to reconnect and exits 0 within SHUTDOWN_GRACE_MS', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'info', SHUTDOWN_GRACE_MS: '3000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = `http://127.0.0.1:${port}`;
      // Bounded by the test's timeout only: a loaded machine can take long to start tsx.
      await eventually(async () => expect((await fetch(`${url}/ready`)).status).toBe(200), 110_000, 200);
      const s = await client(url, { token: await token({ sub: 'u', tid: 'acme' }) });
      const told = new Promise((resolve) => s.once('server:reconnect', resolve));
      child.kill('SIGTERM');
      expect(await told).toMatchObject({ reason: 'shutdown' });
      // Exit 0 is the proof the drain finished in time: past SHUTDOWN_GRACE_MS + 2 s, main.ts exits 1.
      expect(await exited).toBe(0);
      s.close();
      // JSON logs with the node id; no token ever printed.
      const lines = out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.some((l) => l.msg === 'stopped')).toBe(true);
      expect(lines.every((l) => typeof l.node === 'string')).toBe(true);
      expect(out).not.toContain('eyJ');
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);
});
