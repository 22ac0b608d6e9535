import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterHandle, firstTwo, requireBinaries, startCluster } from '../../scripts/topology/cluster.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoEvent, PresenceDiff } from '../../shared/protocol.js';
import { type FluxoClient, connect as sdkConnect } from '../../shared/sdk/index.js';
import { clientPool, eventually, request } from '../harness/node.js';

const TTL_MS = 3000;
let cluster: ClusterHandle;
const { connect, closeAll } = clientPool();
const sdkClients: FluxoClient[] = [];
const two = () => firstTwo(cluster);

beforeAll(async () => {
  requireBinaries();
  cluster = await startCluster({ nodes: 2, env: { PRESENCE_TTL_MS: String(TTL_MS), LOG_LEVEL: 'warn' } });
});
afterAll(async () => {
  closeAll();
  for (const c of sdkClients) c.close();
  await cluster?.stop();
});

/**
 * The SDK on one room, counting what it delivers: on `resync` it resubscribes from the room's own
 * position (a client that resumed from the highest id it had seen skipped what other nodes committed
 * during the outage — issue 9).
 */
async function replayingClient(url: string, tok: string, room: string) {
  const client = sdkConnect({ url, token: tok, transports: ['websocket'], backoff: { initialMs: 50, maxMs: 500 } });
  sdkClients.push(client);
  const events = new Map<number, FluxoEvent>();
  const state = { resyncs: 0, disconnects: 0, duplicates: 0 };
  client.socket.on('resync', () => state.resyncs++);
  client.socket.on('disconnect', () => state.disconnects++);
  const stop = client.subscribe(room, (e) => {
    if (events.has(e.id)) state.duplicates++;
    events.set(e.id, e);
  });
  await stop.ready;
  return { events, state };
}

describe('failures in a two-node cluster', () => {
  it('keeps sockets up through a Redis restart, tells clients to resync, and no committed event goes missing', async () => {
    const [n1, n2] = two();
    const admin = await token({ sub: 'boss', tid: 'blink', role: 'admin' });
    const board = await createBoard(n1.url, admin);
    const room = `workflow:${board.id}`;
    const reader = await token({ sub: 'reader', tid: 'blink' });
    const clients = [await replayingClient(n1.url, reader, room), await replayingClient(n2.url, reader, room)];

    const created: string[] = [];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        try {
          created.push((await createProcess(n2.url, admin, board.id, `w${created.length}`)).id);
        } catch {
          // A write that failed was not committed; nobody must receive it.
        }
        await new Promise((r) => setTimeout(r, 40)); // pacing, not waiting for anything
      }
    })();
    // Writes on both sides of the restart, counted rather than timed: a slow machine writes fewer per second.
    await eventually(() => expect(created.length).toBeGreaterThanOrEqual(5), 10_000);
    await cluster.redis?.restart();
    const afterRestart = created.length;
    await eventually(() => expect(created.length).toBeGreaterThanOrEqual(afterRestart + 5), 15_000);
    writing = false;
    await writer;

    for (const c of clients) await eventually(() => expect(c.state.resyncs).toBeGreaterThan(0), 10_000);
    // Barrier: an event committed after every other write, on the same room. Once each client has it,
    // a duplicate or a disconnect caused by what came before would have been counted.
    const barrier = await createProcess(n2.url, admin, board.id, 'barrier');
    for (const c of clients) {
      await eventually(() => expect([...c.events.values()].some((e) => e.processId === barrier.id)).toBe(true), 10_000);
      const createdSeen = [...c.events.values()].filter((e) => e.type === 'process.created').map((e) => e.processId);
      expect(createdSeen.sort()).toEqual([...created, barrier.id].sort());
      expect(c.state.disconnects).toBe(0);
      expect(c.state.duplicates).toBe(0);
    }
    // Ready again once every Redis connection is back.
    await eventually(async () => expect((await fetch(`${n1.url}/ready`)).status).toBe(200), 10_000);
  });

  it('reports not ready while Redis is down, keeps its sockets, and is ready again (with a resync) when it returns', async () => {
    const [n1] = two();
    const s = await connect(n1.url, await token({ sub: 'patient', tid: 'down' }));
    await request(s, 'subscribe', { room: 'tenant' });
    const resync = new Promise<{ rooms: string[] }>((resolve) => s.once('resync', resolve));
    let disconnects = 0;
    s.on('disconnect', () => disconnects++);
    await cluster.redis?.stop();
    await eventually(async () => {
      const res = await fetch(`${n1.url}/ready`);
      expect(res.status).toBe(503);
      expect(await res.text()).toContain('redis not connected');
    }, 5000);
    await cluster.redis?.restart();
    expect(await resync).toEqual({ rooms: ['tenant'] });
    await eventually(async () => expect((await fetch(`${n1.url}/ready`)).status).toBe(200), 10_000);
    expect(disconnects).toBe(0);
  });

  it(`removes a kill -9'd node's presence on the survivor within PRESENCE_TTL_MS (${TTL_MS} ms), with a leave diff`, async () => {
    const [n1, n2] = two();
    const watcher = await connect(n1.url, await token({ sub: 'watcher', tid: 'crash' }));
    const diffs: (PresenceDiff & { at: number })[] = [];
    watcher.on('presence', (d) => diffs.push({ ...d, at: Date.now() }));
    await request(watcher, 'subscribe', { room: 'tenant' });
    const ghost = await connect(n2.url, await token({ sub: 'ghost', tid: 'crash' }));
    await request(ghost, 'subscribe', { room: 'tenant' });
    await eventually(() => expect(diffs.some((d) => d.joins.some((j) => j.userId === 'ghost'))).toBe(true));

    const killedAt = Date.now();
    await n2.kill9();
    await eventually(() => expect(diffs.some((d) => d.leaves.includes('ghost'))).toBe(true), TTL_MS + 2000, 50);
    const leftAt = diffs.find((d) => d.leaves.includes('ghost'))?.at ?? Number.POSITIVE_INFINITY;
    expect(leftAt - killedAt).toBeLessThanOrEqual(TTL_MS);

    const again = await request(watcher, 'subscribe', { room: 'tenant' });
    if (!('data' in again)) throw new Error(JSON.stringify(again));
    expect(again.data.presence.map((m) => m.userId)).toEqual(['watcher']);
  });
});
