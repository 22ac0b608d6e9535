import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon, { type Client } from 'autocannon';
import { describe, expect, it } from 'vitest';
import { cpuDelta, treeCpuMicros } from '../../loadtest/bench/proc-cpu.js';
import { bindClient } from '../../loadtest/http.js';

describe('write-path bench: load generator', () => {
  it('binds each autocannon client to its own loopback source address (what nginx ip_hash routes on)', async () => {
    const seen = new Map<string, number>();
    const server = createServer((req, res) => {
      const from = req.socket.remoteAddress ?? '?';
      seen.set(from, (seen.get(from) ?? 0) + 1);
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const sources = ['127.0.7.1', '127.0.8.1', '127.0.9.1'];
      let next = 0;
      await autocannon({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        connections: 6,
        amount: 60,
        setupClient: (client: Client) => bindClient(client, sources[next++ % sources.length]!),
      });
      expect([...seen.keys()].sort()).toEqual(sources);
      for (const s of sources) expect(seen.get(s)).toBeGreaterThan(0);
    } finally {
      server.close();
    }
  });
});

describe('write-path bench: CPU of process trees', () => {
  it('counts a descendant while it runs and keeps counting it after its parent reaped it', async () => {
    // sh → node spinning 400 ms, then sh sleeps: the spinner is first a live grandchild, then sh's cutime.
    const sh = spawn('sh', ['-c', `${process.execPath} -e "const t=Date.now();while(Date.now()-t<400){}"; sleep 1`]);
    const pid = sh.pid!;
    const exited = new Promise((r) => sh.once('exit', r));
    try {
      const start = treeCpuMicros({ sh: pid });
      await new Promise((r) => setTimeout(r, 250));
      const running = cpuDelta(start, treeCpuMicros({ sh: pid })).sh!;
      await new Promise((r) => setTimeout(r, 500));
      const reaped = cpuDelta(start, treeCpuMicros({ sh: pid })).sh!;
      expect(running).toBeGreaterThan(0);
      expect(reaped).toBeGreaterThanOrEqual(running);
      expect(reaped).toBeGreaterThan(100_000);
    } finally {
      await exited;
    }
  });
});
