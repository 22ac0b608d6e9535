import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon, { type Client } from 'autocannon';
import { describe, expect, it, vi } from 'vitest';
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
    // sh → node spinning until it has used 300 ms of CPU (not of wall time: on a busy machine it may
    // get a fraction of a core), saying `go` after 50 ms; then sh says `done` (it has reaped node) and
    // sleeps: the spinner is first a live grandchild, then sh's cutime.
    const spin =
      "const cpu=()=>process.cpuUsage().user;let said=false;while(cpu()<300000){if(!said&&cpu()>50000){said=true;console.log('go')}}";
    const sh = spawn('sh', ['-c', `${process.execPath} -e "${spin}"; echo done; sleep 30`]);
    const pid = sh.pid!;
    let out = '';
    sh.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const said = (word: string) => vi.waitFor(() => expect(out).toContain(word), { timeout: 60_000, interval: 20 });
    try {
      const start = treeCpuMicros({ sh: pid });
      await said('go');
      const running = cpuDelta(start, treeCpuMicros({ sh: pid })).sh!;
      await said('done');
      const reaped = cpuDelta(start, treeCpuMicros({ sh: pid })).sh!;
      expect(running).toBeGreaterThan(0);
      expect(reaped).toBeGreaterThanOrEqual(running);
      expect(reaped).toBeGreaterThan(100_000);
    } finally {
      sh.kill();
    }
  });
});
