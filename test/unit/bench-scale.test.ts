import { describe, expect, it } from 'vitest';
import {
  EPHEMERAL_PORTS,
  evenShares,
  groupsPerProcess,
  nginxSizing,
  planScale,
  scaleNginxConfig,
  scaleSourceAddress,
  socketGroups,
  spreadDeviation,
} from '../../loadtest/bench/scale-plan.js';
import { bytesPerSocketOverNodes } from '../../loadtest/bench/scale-report.js';
import { nginxConfig } from '../../scripts/topology/cluster.js';

describe('scale bench: sizing from the socket count', () => {
  it('gives 100,000 sockets 7 nodes of ≤ 15,000, 14 nginx workers and 8 client processes, none past 20,000 files', () => {
    const p = planScale(100_000);
    expect(p.nodes).toBe(7);
    expect(p.perNode).toEqual([14_286, 14_286, 14_286, 14_286, 14_286, 14_285, 14_285]);
    expect(p.nginx).toEqual({ workers: 14, workerConnections: 19_000, rlimitNofile: 20_000, socketsPerWorker: 9_500 });
    // Two fds per proxied socket: the average worker holds 2 × 100,000 / 14 ≈ 14,300 connections.
    expect((2 * p.sockets) / p.nginx.workers).toBeLessThan(p.nginx.workerConnections * 0.8);
    expect(p.clientProcesses).toBe(8);
    expect(p.sourcesPerNode).toBe(3);
    expect(p.maxPerSource).toBe(4_762);
  });

  it('scales to 1,000,000 sockets with the same limits, and keeps the CI size small', () => {
    const big = planScale(1_000_000);
    expect([big.nodes, big.nginx.workers, big.clientProcesses]).toEqual([67, 132, 80]);
    expect(Math.max(...big.perNode)).toBeLessThanOrEqual(15_000);
    expect(big.maxPerSource).toBeLessThan(EPHEMERAL_PORTS);
    const quick = planScale(2000, { nodes: 2 });
    expect([quick.nodes, quick.nginx.workers, quick.clientProcesses, quick.sourcesPerNode]).toEqual([2, 1, 2, 1]);
  });

  it('refuses fewer nodes than the file limit allows, and sizes nginx from its own limit', () => {
    expect(() => planScale(100_000, { nodes: 6 })).toThrow('need at least 7 nodes');
    expect(
      nginxSizing(10_000, { fdLimit: 4_000, perNode: 15_000, nginxFill: 0.5, nginxReserve: 0, perClientProcess: 1, perSource: 1 }),
    ).toEqual({
      workers: 10,
      workerConnections: 4_000,
      rlimitNofile: 4_000,
      socketsPerWorker: 2_000,
    });
  });

  it('splits counts evenly, larger shares first', () => {
    expect(evenShares(10, 3)).toEqual([4, 3, 3]);
    expect(evenShares(2, 4)).toEqual([1, 1, 0, 0]);
  });
});

describe('scale bench: source addresses', () => {
  it('gives each index its own /24 in 127.X.Y.1, leaving 127.0.Y.1 to the other suites', () => {
    expect(scaleSourceAddress(0)).toBe('127.1.1.1');
    expect(scaleSourceAddress(253)).toBe('127.1.254.1');
    expect(scaleSourceAddress(254)).toBe('127.2.1.1');
    const all = Array.from({ length: 1000 }, (_, i) => scaleSourceAddress(i).split('.').slice(0, 3).join('.'));
    expect(new Set(all).size).toBe(1000);
    expect(() => scaleSourceAddress(254 * 254)).toThrow('not 0..');
  });

  it('spreads a node over its addresses and puts the first roomSize sockets of each node in its room', () => {
    const groups = socketGroups(
      new Map([
        ['n1', { count: 10, addresses: ['a', 'b', 'c'], room: 'workflow:1' }],
        ['n2', { count: 4, addresses: ['d'], room: 'workflow:2' }],
      ]),
      5,
    );
    const summary = groups.map((g) => `${g.node} ${g.localAddress} ${g.count} ${g.rooms.map((r) => r.name).join('+')}`);
    expect(summary).toEqual([
      'n1 a 4 tenant+workflow:1',
      'n1 b 1 tenant+workflow:1',
      'n1 b 2 tenant',
      'n1 c 3 tenant',
      'n2 d 4 tenant+workflow:2',
    ]);
    expect(groups.find((g) => g.node === 'n2')!.rooms[1]).toEqual({ name: 'workflow:2', key: 'n2' });
  });

  it('gives every client process a share of every group, losing no socket', () => {
    const groups = socketGroups(new Map([['n1', { count: 1001, addresses: ['a', 'b'], room: 'workflow:1' }]]), 300);
    const per = groupsPerProcess(groups, 3);
    const counts = per.map((gs) => gs.reduce((s, g) => s + g.count, 0));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1001);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    for (const gs of per) expect(new Set(gs.map((g) => `${g.localAddress}${g.rooms.length}`)).size).toBe(3);
  });

  it('reports the node furthest from its planned share', () => {
    expect(spreadDeviation({ n1: 100, n2: 100 }, { n1: 100, n2: 90 })).toBeCloseTo(0.1);
    expect(spreadDeviation({ n1: 100 }, {})).toBe(1);
  });
});

describe('scale bench: nginx and memory', () => {
  it("writes the workers, their file limit and reuseport into the harness's config", () => {
    const base = nginxConfig({ dir: '/tmp/x', port: 8081, upstreams: ['127.0.0.1:1', '127.0.0.1:2'] });
    const conf = scaleNginxConfig(base, nginxSizing(100_000));
    expect(conf).toMatch(/^worker_processes 14;\nworker_rlimit_nofile 20000;$/m);
    expect(conf).toContain('worker_connections 19000;');
    expect(conf).toContain('listen 127.0.0.1:8081 reuseport;');
    expect(conf).toContain('access_log off;');
    expect(conf).toContain('ip_hash;');
    expect(() => scaleNginxConfig('events {}', nginxSizing(10))).toThrow('nothing matches');
  });

  it('takes memory per socket as what the nodes grew by over the sockets they hold', () => {
    const nodes = [
      { active: 10_000, rssBaseBytes: 100e6, rssBytes: 170e6 },
      { active: 5_000, rssBaseBytes: 100e6, rssBytes: 140e6 },
    ];
    expect(bytesPerSocketOverNodes(nodes)).toBeCloseTo(110e6 / 15_000);
    expect(bytesPerSocketOverNodes([{ active: 0, rssBaseBytes: 1, rssBytes: 2 }])).toBeNull();
  });
});
