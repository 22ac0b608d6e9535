import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterHandle, requireBinaries, type SpawnedNode, spawnNode, startCluster } from '../../scripts/topology/cluster.js';
import { token } from '../../scripts/topology/tokens.js';
import type { PresenceDiff } from '../../shared/protocol.js';
import { connect as connectSdk, type FluxoClient } from '../../shared/sdk/index.js';
import { type Client, client, eventually, request } from '../harness/node.js';

/** SIGTERM rounds: the exit-code-1 bug depended on timing (a late publish after Redis was closed). */
const ROUNDS = 3;
const TENANT = 'drain';

let cluster: ClusterHandle;
/** Current process per node id (a drained node is started again on its port for the next round). */
const live = new Map<string, SpawnedNode>();
const respawned: SpawnedNode[] = [];
const sockets: Client[] = [];
const sdks: FluxoClient[] = [];

beforeAll(async () => {
  requireBinaries();
  cluster = await startCluster({ nodes: 3, nginx: true, env: { LOG_LEVEL: 'info', SHUTDOWN_GRACE_MS: '2000' } });
  for (const n of cluster.nodes) live.set(n.nodeId, n);
}, 90_000);
afterAll(async () => {
  for (const c of sdks) c.close();
  for (const s of sockets) s.close();
  for (const n of respawned) await n.kill9();
  await cluster?.stop();
});

async function open(url: string, sub: string): Promise<Client> {
  const s = await client(url, { token: await token({ sub, tid: TENANT }) });
  sockets.push(s);
  const ack = await request(s, 'subscribe', { room: 'tenant' });
  if (!('data' in ack)) throw new Error(JSON.stringify(ack));
  return s;
}

/** Resolves with the process's exit code; SIGKILLs it (and fails) if the drain takes longer than `ms`. */
async function sigterm(node: SpawnedNode, ms: number): Promise<number | null> {
  const timer = setTimeout(() => void node.kill9(), ms);
  try {
    await node.stop();
  } finally {
    clearTimeout(timer);
  }
  return node.proc.exitCode;
}

describe('SIGTERM drains one node of a Redis cluster', () => {
  it('exits 0, moves only its own clients, and leaves the other nodes’ clients connected (repeated)', async () => {
    const nginx = cluster.nginx;
    const redisUrl = cluster.redis?.url;
    if (!nginx || !redisUrl) throw new Error('nginx or redis not started');
    const redis = new Redis(redisUrl);
    const emitter = new Emitter(redis, { key: 'fluxo:sio' });
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        // The node nginx sends this source address to is the one to drain (it changes as nodes come and go).
        const sdk = connectSdk({ url: nginx.url, token: await token({ sub: `sdk${round}`, tid: TENANT }), transports: ['websocket'] });
        sdks.push(sdk);
        await eventually(() => expect(sdk.status.state, `round ${round}: ${JSON.stringify(sdk.status)}`).toBe('connected'), 10_000);
        const aId = sdk.session?.nodeId ?? '';
        const a = live.get(aId);
        if (!a) throw new Error(`unknown node ${aId}`);
        const others = [...live.values()].filter((n) => n !== a);
        expect(others).toHaveLength(2);

        // On A: a client that gets told to leave. On B and C: clients that must not notice anything.
        const onA = await open(a.url, `a${round}`);
        const toldA = new Promise((resolve) => onA.once('server:reconnect', resolve));
        const stay: { node: string; s: Client; told: number; drops: number; marks: number[] }[] = [];
        for (const n of others) {
          for (let i = 0; i < 2; i++) {
            const entry = { node: n.nodeId, s: await open(n.url, `${n.nodeId}-${round}-${i}`), told: 0, drops: 0, marks: [] as number[] };
            entry.s.on('server:reconnect', () => entry.told++);
            entry.s.on('disconnect', () => entry.drops++);
            entry.s.on('event', (e) => {
              if (e.type === 'barrier') entry.marks.push(e.id);
            });
            stay.push(entry);
          }
        }
        const watcher = stay[0]?.s;
        const diffs: PresenceDiff[] = [];
        watcher?.on('presence', (d) => diffs.push(d));

        const code = await sigterm(a, 10_000);
        expect(code, `round ${round}: exit code of ${aId} (log ${a.log})`).toBe(0);
        expect(await toldA).toMatchObject({ reason: 'shutdown', nodeId: aId });

        // Barrier: published through Redis after A is gone, so anything A sent other nodes' clients
        // (a server:reconnect, a disconnect) reached them before it.
        emitter.to(`t:${TENANT}:tenant`).emit('event', { id: 1000 + round, type: 'barrier', rooms: ['tenant'], data: {} });
        await eventually(() => {
          for (const e of stay) expect(e.marks, e.node).toContain(1000 + round);
        }, 5000);
        for (const e of stay) {
          expect({ node: e.node, told: e.told, drops: e.drops, connected: e.s.connected }).toEqual({
            node: e.node,
            told: 0,
            drops: 0,
            connected: true,
          });
        }
        // A's leave diffs went out before its Redis connections closed.
        await eventually(
          () =>
            expect(
              diffs.some((d) => d.leaves.includes(`a${round}`)),
              JSON.stringify(diffs),
            ).toBe(true),
          5000,
        );
        // The SDK client came back through nginx to another node.
        await eventually(() => {
          expect(sdk.status.state).toBe('connected');
          expect(sdk.session?.nodeId).not.toBe(aId);
        }, 15_000);

        const log = await readFile(a.log, 'utf8');
        expect(log).toContain('"msg":"stopped"');
        expect(log).not.toMatch(/unhandled|Connection is closed/i);

        for (const e of stay) e.s.close();
        onA.close();
        sdk.close();
        // A again, on the same port (nginx's upstream), for the next round.
        if (round < ROUNDS) {
          const again = await spawnNode({ ...cluster.env, NODE_ID: aId, PORT: String(a.port) }, join(cluster.dir, `${aId}-r${round}.log`));
          respawned.push(again);
          live.set(aId, again);
        }
      }
    } finally {
      redis.disconnect();
    }
  }, 150_000);
});
