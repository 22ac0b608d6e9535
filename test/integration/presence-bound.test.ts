import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpawnedNode } from '../../scripts/topology/cluster.js';
import type { PresenceDiff, SubscribeResult } from '../../shared/protocol.js';
import { type Client, eventually, request } from '../harness/node.js';
import { NODE_PAIR_START_MS, type NodePair, startNodePair } from '../harness/node-pair.js';

// PRESENCE_MAX_CONNECTIONS on two real nodes sharing Redis (server/realtime/presence-diffs.ts): over
// the bound a subscribe ack carries the count instead of the list and members get no diffs but
// the one saying the room crossed over; back at the bound, diffs resume.

const MAX = 3;
const TENANT = 'bound';
/** How long an awaited diff may take on a loaded machine before the test fails (each wait returns as soon as it arrives). */
const WAIT_MS = 20_000;
let pair: NodePair;
let a: SpawnedNode;
let b: SpawnedNode;

beforeAll(async () => {
  pair = await startNodePair('presence-bound', { PRESENCE_MAX_CONNECTIONS: String(MAX) });
  ({ a, b } = pair);
}, NODE_PAIR_START_MS);
afterAll(async () => {
  await pair?.stop();
});

function connect(node: SpawnedNode, sub: string): Promise<Client> {
  return pair.connect(node, TENANT, sub);
}

async function subscribe(socket: Client, room = 'tenant'): Promise<SubscribeResult> {
  const ack = await request(socket, 'subscribe', { room });
  if (!('data' in ack)) throw new Error(JSON.stringify(ack));
  return ack.data;
}

async function send(socket: Client, event: 'unsubscribe' | 'presence:update', room = 'tenant'): Promise<void> {
  const ack =
    event === 'unsubscribe' ? await request(socket, event, { room }) : await request(socket, event, { room, state: { status: 'editing' } });
  if (!('data' in ack)) throw new Error(JSON.stringify(ack));
}

/** A member of the room `tenant` who records its diffs, and is in its own user room for barriers. */
async function member(node: SpawnedNode, userId: string) {
  const socket = await connect(node, userId);
  const diffs: PresenceDiff[] = [];
  socket.on('presence', (diff) => diffs.push(diff));
  await subscribe(socket, `user:${userId}`);
  const ack = await subscribe(socket);
  return { userId, socket, diffs, ack, tenantDiffs: () => diffs.filter((d) => d.room === 'tenant') };
}
type Member = Awaited<ReturnType<typeof member>>;

/**
 * Returns once every diff that node A or B had to send `m` for a change made before this call has
 * reached it: through each node, another connection of `m`'s user joins its user room, and `m`
 * waits for that node's next diff of the room, then disconnects it and waits for the next one, so
 * the user room never holds more than 2 connections and stays under the bound. A node sends its
 * rooms' diffs in the order they changed (PresenceDiffs.flush), and one node's messages reach a
 * socket in the order sent (locally, or through the classic Redis adapter's one publishing
 * connection), so a diff of `tenant` that the node had to send would have arrived first.
 * Any diff of the user room will do, whatever it says: on a loaded machine a Redis call may pass
 * its command timeout, and the node then tells what it saw itself (a join, 1 connection) — the
 * order is what the barrier needs, not the count.
 */
async function barrier(m: Member): Promise<void> {
  const userRoom = `user:${m.userId}`;
  const next = (from: number) => eventually(() => expect(m.diffs.slice(from).some((d) => d.room === userRoom)).toBe(true), WAIT_MS);
  for (const node of [a, b]) {
    const other = await connect(node, m.userId);
    let from = m.diffs.length;
    await subscribe(other, userRoom);
    await next(from);
    from = m.diffs.length;
    other.disconnect();
    await next(from);
  }
}

describe('presence of a room over PRESENCE_MAX_CONNECTIONS, on two nodes', () => {
  it('answers the subscribe over the bound with the count, sends members one truncated diff and then none, and resumes at the bound', async () => {
    const ada = await member(a, 'ada');
    const bob = await member(b, 'bob');
    const cy = await member(a, 'cy');
    expect(cy.ack).toMatchObject({ presenceCount: 3, presenceTruncated: false });
    expect(cy.ack.presence.map((m) => m.userId).sort()).toEqual(['ada', 'bob', 'cy']);
    await Promise.all([barrier(ada), barrier(bob)]);
    const before = { ada: ada.tenantDiffs().length, bob: bob.tenantDiffs().length };

    // The fourth user: the ack leaves the list out and counts the caller.
    const dan = await member(b, 'dan');
    expect(dan.ack).toMatchObject({ presence: [], presenceCount: 4, presenceTruncated: true });
    await Promise.all([barrier(ada), barrier(bob)]);
    const crossed: PresenceDiff = { room: 'tenant', joins: [], leaves: [], updates: [], count: 4, truncated: true };
    expect(ada.tenantDiffs().slice(before.ada)).toEqual([crossed]);
    expect(bob.tenantDiffs().slice(before.bob)).toEqual([crossed]);

    // Over the bound, on either node: a join, a state change, a leave — nobody is told.
    const eve = await connect(a, 'eve');
    expect(await subscribe(eve)).toMatchObject({ presence: [], presenceCount: 5, presenceTruncated: true });
    await send(bob.socket, 'presence:update');
    await send(eve, 'unsubscribe');
    await Promise.all([barrier(ada), barrier(bob), barrier(dan)]);
    expect(ada.tenantDiffs().slice(before.ada)).toEqual([crossed]);
    expect(bob.tenantDiffs().slice(before.bob)).toEqual([crossed]);
    // Dan was in the room when it crossed (his ack said so already).
    expect(dan.tenantDiffs()).toEqual([crossed]);

    // Back at the bound: diffs resume with the changes from then on, to the member who subscribed
    // over it as well; its next subscribe gets the whole list.
    await send(cy.socket, 'unsubscribe');
    const left: PresenceDiff = { room: 'tenant', joins: [], leaves: ['cy'], updates: [], count: 3, truncated: false };
    for (const m of [ada, bob, dan]) await eventually(() => expect(m.tenantDiffs()).toContainEqual(left), WAIT_MS);
    await send(ada.socket, 'presence:update');
    await eventually(
      () => expect(dan.tenantDiffs().some((d) => d.updates.some((u) => u.userId === 'ada' && u.state?.status === 'editing'))).toBe(true),
      WAIT_MS,
    );
    const again = await subscribe(dan.socket);
    expect(again).toMatchObject({ presenceCount: 3, presenceTruncated: false });
    expect(again.presence.map((m) => m.userId).sort()).toEqual(['ada', 'bob', 'dan']);
  });
});
