import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpawnedNode } from '../../scripts/topology/cluster.js';
import type { PresenceDiff, PresenceMember } from '../../shared/protocol.js';
import { type Client, eventually, request } from '../harness/node.js';
import { NODE_PAIR_START_MS, type NodePair, startNodePair } from '../harness/node-pair.js';

// Presence diffs are gathered per node for PRESENCE_FLUSH_MS (50 ms) and each node sends its own:
// a watcher must still end with the right members when one user's connections are on two nodes
// and change within one window (a ghost member stayed before: server/realtime/presence-diffs.ts).

let pair: NodePair;
let a: SpawnedNode;
let b: SpawnedNode;
/** Each test in a tenant of its own, in its `tenant` room (no workflow needed: each node has its own PGlite). */
const ROOM = 'tenant';

beforeAll(async () => {
  pair = await startNodePair('presence');
  ({ a, b } = pair);
}, NODE_PAIR_START_MS);
afterAll(async () => {
  await pair?.stop();
});

function connect(node: SpawnedNode, tenant: string, sub: string): Promise<Client> {
  return pair.connect(node, tenant, sub);
}

async function subscribe(socket: Client): Promise<void> {
  const ack = await request(socket, 'subscribe', { room: ROOM });
  if (!('data' in ack)) throw new Error(JSON.stringify(ack));
}

async function unsubscribe(socket: Client): Promise<void> {
  const ack = await request(socket, 'unsubscribe', { room: ROOM });
  if (!('data' in ack)) throw new Error(JSON.stringify(ack));
}

/** A watcher on node A keeping the room's members as the SDK does (shared/sdk/client.ts). */
async function watch(tenant: string) {
  const socket = await connect(a, tenant, 'watcher');
  const members = new Map<string, PresenceMember>();
  const diffs: PresenceDiff[] = [];
  socket.on('presence', (diff) => {
    diffs.push(diff);
    for (const userId of diff.leaves) members.delete(userId);
    for (const m of [...diff.joins, ...diff.updates]) members.set(m.userId, m);
  });
  await subscribe(socket);
  return { tenant, members, diffs };
}

/**
 * Waits until the watcher has a diff from each node sent after everything before this call: a
 * user subscribing on one node only is in that node's current window or a later one, and one
 * node's diffs reach the watcher in the order it sent them.
 */
async function barrier(seen: { tenant: string; diffs: PresenceDiff[] }): Promise<void> {
  const fromA = 'barrier-a';
  const fromB = 'barrier-b';
  await Promise.all([subscribe(await connect(a, seen.tenant, fromA)), subscribe(await connect(b, seen.tenant, fromB))]);
  const named = (userId: string) => seen.diffs.some((d) => [...d.joins, ...d.updates].some((m) => m.userId === userId));
  await eventually(() => expect(named(fromA) && named(fromB)).toBe(true));
}

describe('presence of a user with connections on two nodes', () => {
  it('ends with the leave when a join and a leave of one node fall in one window while the other node showed the user', async () => {
    const seen = await watch('fold');
    const onA = await connect(a, 'fold', 'ada');
    const onB = await connect(b, 'fold', 'ada');
    // Back to back, within node A's window: A sees ada join then leave; B meanwhile showed her.
    await subscribe(onA);
    await subscribe(onB);
    await unsubscribe(onB);
    await unsubscribe(onA);
    await barrier(seen);
    expect(seen.members.has('ada')).toBe(false);
  });

  it("ends with the leave when one node's 'still here' would arrive after the other node's final leave", async () => {
    const seen = await watch('stale');
    const onA = await connect(a, 'stale', 'bob');
    const onB = await connect(b, 'stale', 'bob');
    const cy = await connect(b, 'stale', 'cy');
    await subscribe(onA);
    await subscribe(onB);
    await eventually(() => expect(seen.members.get('bob')?.connections).toBe(2));
    // Node B's window opens first (someone else joins there), so B sends before A does: B's
    // "bob left" would come before A's older "bob still here, one connection".
    await subscribe(cy);
    await unsubscribe(onA);
    await unsubscribe(onB);
    await barrier(seen);
    expect(seen.members.has('bob')).toBe(false);
    expect(seen.members.has('cy')).toBe(true);
  });
});
