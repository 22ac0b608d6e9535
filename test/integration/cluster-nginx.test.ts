import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { io as connectRaw } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { type ClusterHandle, requireBinaries, startCluster } from '../../scripts/topology/cluster.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import { type Client, eventually, request } from '../harness/node.js';

let cluster: ClusterHandle;
const open: Client[] = [];

beforeAll(async () => {
  requireBinaries();
  cluster = await startCluster({ nodes: 3, nginx: true, env: { LOG_LEVEL: 'warn' } });
});
afterAll(async () => {
  for (const s of open) s.close();
  await cluster?.stop();
});

/** Connects through nginx from a given loopback source address and resolves with the node that answered. */
function connectFrom(url: string, localAddress: string, tok: string): Promise<{ socket: Client; nodeId: string }> {
  const socket: Client = connectRaw(url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    auth: { token: tok },
    localAddress,
  } as Parameters<typeof connectRaw>[1]);
  open.push(socket);
  return new Promise((resolve, reject) => {
    socket.once('hello', (h) => resolve({ socket, nodeId: h.nodeId }));
    socket.once('connect_error', reject);
  });
}

describe('through nginx with ip_hash', () => {
  it('spreads source addresses in different /24s over the nodes, and keeps one address on one node', async () => {
    const nginx = cluster.nginx;
    if (!nginx) throw new Error('nginx not started');
    const tok = await token({ sub: 'u', tid: 'lb' });
    const sources = Array.from({ length: 12 }, (_, i) => `127.0.${i + 1}.1`);
    const first = new Map<string, string>();
    for (const src of sources) {
      const { socket, nodeId } = await connectFrom(nginx.url, src, tok);
      first.set(src, nodeId);
      socket.close();
    }
    // 12 /24s over 3 nodes: ip_hash puts them on more than one node.
    expect(new Set(first.values()).size).toBeGreaterThan(1);
    for (const src of sources.slice(0, 4)) {
      for (let i = 0; i < 3; i++) {
        const { socket, nodeId } = await connectFrom(nginx.url, src, tok);
        expect(nodeId, `${src} moved`).toBe(first.get(src));
        socket.close();
      }
      // Same /24, other host: ip_hash only looks at the first three octets.
      const sibling = src.replace(/\.1$/, '.7');
      expect((await connectFrom(nginx.url, sibling, tok)).nodeId).toBe(first.get(src));
    }
  });

  it('delivers events to clients on every node behind nginx, and hides /metrics', async () => {
    const nginx = cluster.nginx;
    if (!nginx) throw new Error('nginx not started');
    const admin = await token({ sub: 'boss', tid: 'lb2', role: 'admin' });
    const board = await createBoard(nginx.url, admin);
    const tok = await token({ sub: 'r', tid: 'lb2' });
    const clients = await Promise.all(Array.from({ length: 9 }, (_, i) => connectFrom(nginx.url, `127.0.${i + 20}.1`, tok)));
    const got = clients.map(() => 0);
    await Promise.all(
      clients.map(
        ({ socket }, i) =>
          new Promise<void>((resolve) => {
            socket.on('event', () => {
              got[i] = (got[i] ?? 0) + 1;
            });
            socket.emit('subscribe', { room: `workflow:${board.id}` }, () => resolve());
          }),
      ),
    );
    expect(new Set(clients.map((c) => c.nodeId)).size).toBeGreaterThan(1);
    await createProcess(nginx.url, admin, board.id);
    await eventually(() => expect(got.every((n) => n >= 1)).toBe(true));
    expect((await api(nginx.url, 'GET', '/metrics')).status).toBe(404);
  });

  it('ships a production nginx/nginx.conf that nginx accepts (upstream names swapped for loopback)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fluxo-nginx-t-'));
    try {
      const conf = (await readFile(join(import.meta.dirname, '../../nginx/nginx.conf'), 'utf8')).replace(/fluxo-\d:8080/g, '127.0.0.1:1');
      for (const must of [
        'ip_hash;',
        'max_fails=',
        'proxy_set_header Upgrade',
        'X-Forwarded-For',
        'X-Real-IP',
        'client_max_body_size',
        'proxy_read_timeout',
      ]) {
        expect(conf).toContain(must);
      }
      expect(conf).toMatch(/location = \/metrics \{\s*return 404;/);
      await writeFile(join(dir, 'nginx.conf'), conf);
      const { stderr } = await promisify(execFile)('nginx', ['-t', '-c', join(dir, 'nginx.conf'), '-p', dir, '-e', join(dir, 'error.log')]);
      expect(stderr).toContain('test is successful');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('moves the clients of a kill -9ed node to a survivor through nginx; replaying from their last id they miss nothing', async () => {
    const nginx = cluster.nginx;
    if (!nginx) throw new Error('nginx not started');
    const admin = await token({ sub: 'boss', tid: 'lb3', role: 'admin' });
    const board = await createBoard(nginx.url, admin);
    const room = `workflow:${board.id}`;
    const tok = await token({ sub: 'r', tid: 'lb3' });
    const victim = cluster.nodes[cluster.nodes.length - 1];
    if (!victim) throw new Error('no nodes');
    // A source address that ip_hash sends to the victim.
    let src = '';
    for (let i = 50; i < 120 && !src; i++) {
      const { socket, nodeId } = await connectFrom(nginx.url, `127.0.${i}.1`, tok);
      socket.close();
      if (nodeId === victim.nodeId) src = `127.0.${i}.1`;
    }
    expect(src, 'no /24 hashed to the victim').not.toBe('');

    const events = new Map<number, string>();
    const subscribe = async (socket: Client) => {
      socket.on('event', (e) => events.set(e.id, JSON.stringify(e)));
      const ack = await request(socket, 'subscribe', { room, after: Math.max(0, ...events.keys()) });
      if (!('data' in ack)) throw new Error(JSON.stringify(ack));
      for (const e of ack.data.events) events.set(e.id, JSON.stringify(e));
    };
    const first = await connectFrom(nginx.url, src, tok);
    await subscribe(first.socket);
    const survivor = cluster.nodes.find((n) => n.nodeId !== victim.nodeId);
    if (!survivor) throw new Error('no survivor');

    const created: string[] = [];
    created.push((await createProcess(survivor.url, admin, board.id, 'before')).id);
    const lost = new Promise((r) => first.socket.once('disconnect', r));
    await victim.kill9();
    await lost;
    created.push((await createProcess(survivor.url, admin, board.id, 'while away')).id);
    const again = await connectFrom(nginx.url, src, tok);
    expect(again.nodeId).not.toBe(victim.nodeId);
    await subscribe(again.socket);
    created.push((await createProcess(survivor.url, admin, board.id, 'after')).id);
    await eventually(() => {
      const all = [...events.values()];
      for (const id of created) expect(all.filter((e) => e.includes(id) && e.includes('process.created'))).toHaveLength(1);
    });
  });
});
