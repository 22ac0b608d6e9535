import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { type ClusterHandle, firstTwo, requireBinaries, startCluster } from '../../scripts/topology/cluster.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoEvent, TransitionResult } from '../../shared/protocol.js';
import type { AdminConnection } from '../../shared/schemas.js';
import { connect, type FluxoClient, FluxoError } from '../../shared/sdk/index.js';
import { eventually } from '../harness/node.js';

/**
 * The SDK obeys the operator API's `server:unsubscribe`, on real processes (two nodes, Redis,
 * Postgres): the client is told, drops the room, and neither a cut transport nor a restart of its
 * node subscribes it again, while its other room resumes (with what it missed meanwhile).
 */

const KEY = 'sdk-operator-test-key-0123456789abcdef';
const TID = 'sdk-ops';

let cluster: ClusterHandle;
const clients: FluxoClient[] = [];

beforeAll(async () => {
  requireBinaries();
  cluster = await startCluster({ nodes: 2, env: { LOG_LEVEL: 'warn', OPERATOR_API_KEY: KEY } });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(async () => {
  await cluster?.stop();
});

/** Moves a new process back and forth between `todo` and `doing` over HTTP; each call resolves with its event. */
function mover(url: string, editor: string, processId: string): () => Promise<FluxoEvent> {
  let stage = 'todo';
  return async () => {
    stage = stage === 'todo' ? 'doing' : 'todo';
    const res = await api<{ data: TransitionResult }>(url, 'POST', `/api/processes/${processId}/transition`, {
      token: editor,
      body: { to: stage },
    });
    if (res.status !== 200) throw new Error(`transition: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.data.event;
  };
}

describe('SDK and the operator API', () => {
  it('drops a room the operator took it out of: not subscribed again after a cut transport nor a node restart; its other room resumes', async () => {
    const [n1, n2] = firstTwo(cluster);
    const admin = await token({ sub: 'boss', tid: TID, role: 'admin' });
    const wf = await createBoard(n2.url, admin);
    const [taken, kept] = [await createProcess(n2.url, admin, wf.id, 'Taken'), await createProcess(n2.url, admin, wf.id, 'Kept')];
    // Rooms of one process each: an event of `taken` reaches this connection through its room or not at all.
    const TAKEN = `process:${taken.id}`;
    const KEPT = `process:${kept.id}`;

    const sdk = connect({
      url: n1.url,
      token: await token({ sub: 'eve', tid: TID }),
      transports: ['websocket'],
      backoff: { initialMs: 20, maxMs: 200 },
    });
    clients.push(sdk);
    const subscribesSent: string[] = [];
    sdk.socket.onAnyOutgoing((event, req) => {
      if (event === 'subscribe') subscribesSent.push((req as { room: string }).room);
    });
    // Every event packet the connection gets, whatever its room: what the server sent, before the SDK's filtering.
    const received: FluxoEvent[] = [];
    sdk.socket.on('event', (e) => received.push(e));
    // A subscribe answered and applied (the SDK emits a presence snapshot, diff null, per room it synced).
    const synced: string[] = [];
    sdk.on('presence', ({ room, diff }) => {
      if (diff === null) synced.push(room);
    });
    const unsubscribed: { room: string; error: FluxoError }[] = [];
    sdk.on('unsubscribed', (u) => unsubscribed.push(u));
    const errors: FluxoError[] = [];
    sdk.on('error', (e) => errors.push(e));

    const gotTaken: FluxoEvent[] = [];
    const gotKept: FluxoEvent[] = [];
    const stopTaken = sdk.subscribe(TAKEN, (e) => gotTaken.push(e));
    const stopKept = sdk.subscribe(KEPT, (e) => gotKept.push(e));
    await Promise.all([stopTaken.ready, stopKept.ready]);

    // Through the other node: the survey carries it to n1.
    const res = await api(n2.url, 'POST', `/api/admin/tenants/${TID}/users/eve/unsubscribe`, { token: KEY, body: { room: TAKEN } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: { connections: 1 }, complete: true, missing: [] });
    await eventually(() => expect(unsubscribed).toHaveLength(1));
    expect(unsubscribed[0]?.room).toBe(TAKEN);
    expect(unsubscribed[0]?.error).toBeInstanceOf(FluxoError);
    expect(unsubscribed[0]?.error).toMatchObject({ code: 'unsubscribed_by_operator', retryable: false });
    // A notice, not a failure.
    expect(errors).toEqual([]);
    expect(sdk.position(TAKEN)).toBeNull();

    const editor = await token({ sub: 'ed', tid: TID, role: 'editor' });
    const moveTaken = mover(n2.url, editor, taken.id);
    const moveKept = mover(n2.url, editor, kept.id);

    /**
     * After a reconnect: only KEPT was subscribed again, on the server too; then an event of TAKEN
     * and, after it, one of KEPT (the barrier). Both are published by n2 in commit order and reach
     * n1 in that order, so a connection still in TAKEN would have got TAKEN's event first.
     */
    const checkOnlyKeptResumed = async (sentBefore: number, missed: FluxoEvent[]) => {
      expect(subscribesSent.slice(sentBefore)).toEqual([KEPT]);
      const listed = await api<{ data: AdminConnection[] }>(n2.url, 'GET', `/api/admin/tenants/${TID}/users/eve/connections`, {
        token: KEY,
      });
      expect(listed.body.data.find((c) => c.id === sdk.socket.id)?.rooms).toEqual([KEPT]);
      expect(listed.body.data.flatMap((c) => c.rooms)).not.toContain(TAKEN);
      const takenEvent = await moveTaken();
      const barrier = await moveKept();
      await eventually(() => expect(gotKept.at(-1)?.id).toBe(barrier.id), 15_000);
      expect(received.map((e) => e.id)).not.toContain(takenEvent.id);
      expect(gotTaken).toEqual([]);
      // KEPT got what it missed while disconnected (replayed), then the barrier, each once.
      expect(gotKept.slice(-(missed.length + 1)).map((e) => e.id)).toEqual([...missed.map((e) => e.id), barrier.id]);
      expect(new Set(gotKept.map((e) => e.id)).size).toBe(gotKept.length);
    };

    // 1. The transport is cut: the SDK reconnects to the same node and resubscribes.
    let sentBefore = subscribesSent.length;
    let syncedBefore = synced.length;
    const firstSocket = sdk.socket.id;
    sdk.socket.io.engine.close();
    await eventually(() => expect(synced.slice(syncedBefore)).toContain(KEPT), 15_000);
    expect(sdk.socket.id).not.toBe(firstSocket);
    await checkOnlyKeptResumed(sentBefore, []);

    // 2. Its node dies and comes back on the same address; meanwhile both rooms get an event.
    sentBefore = subscribesSent.length;
    syncedBefore = synced.length;
    await n1.kill9();
    await eventually(() => expect(sdk.status.state).not.toBe('connected'));
    const whileDown = [await moveTaken(), await moveKept()];
    await cluster.restartNode(1);
    await eventually(() => expect(synced.slice(syncedBefore)).toContain(KEPT), 30_000);
    await checkOnlyKeptResumed(sentBefore, whileDown.slice(1));

    expect(unsubscribed).toHaveLength(1);
    expect(errors).toEqual([]);
    // Not a ban: the application may subscribe the room again, and it delivers.
    const again: FluxoEvent[] = [];
    await sdk.subscribe(TAKEN, (e) => again.push(e)).ready;
    const back = await moveTaken();
    await eventually(() => expect(again.map((e) => e.id)).toEqual([back.id]));
  }, 90_000);
});
