import { afterAll, beforeAll, expect, it } from 'vitest';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { createStore } from '../../server/store/index.js';
import type { Store } from '../../server/store/store.js';
import { internalRoom } from '../../shared/rooms.js';
import { client, eventually, request, startNode } from '../harness/node.js';

/**
 * A socket that goes away while its `subscribe` waits for the database (the room is a process: it
 * must exist in its tenant). Its disconnect leaves the rooms it was in when it closed; a join made
 * after that would stay in the room and in its presence for good — seen by every later subscriber,
 * past PRESENCE_TTL_MS, out of reach of the operator API (which lists live sockets only).
 */

let node: FluxoNode;
/** While set, process reads wait for it: the subscribe in flight stops there. */
let gate: { reached: () => void; open: Promise<void>; done: () => void } | null = null;

beforeAll(async () => {
  const store = await createStore();
  const gated: Store = new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (key !== 'getProcess' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: unknown[]) => {
        const held = gate;
        if (!held) return value.apply(target, args);
        held.reached();
        await held.open;
        try {
          return await value.apply(target, args);
        } finally {
          held.done();
        }
      };
    },
  });
  node = await startNode({}, { store: gated });
});
afterAll(() => node?.close());

it('a socket gone while its subscribe read the room is not left in the room or its presence', async () => {
  const admin = await token({ sub: 'ada', tid: 'ghostco', role: 'admin' });
  const board = await createBoard(node.url, admin);
  const processId = (await createProcess(node.url, admin, board.id, 'Card')).id;
  const room = `process:${processId}`;
  const internal = internalRoom('ghostco', room);

  let reached!: () => void;
  let open!: () => void;
  let done!: () => void;
  const atRead = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const readDone = new Promise<void>((resolve) => {
    done = resolve;
  });
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  gate = { reached, open: opened, done };
  const leaving = await client(node.url, { token: await token({ sub: 'ghost', tid: 'ghostco', role: 'viewer' }) });
  leaving.emit('subscribe', { room }, () => {});
  await atRead;
  leaving.close();
  await eventually(() => expect(node.io.of('/').sockets.size).toBe(0));
  gate = null;
  open();
  // Barrier: the read returned and every step the handler takes without I/O after it has run (the
  // join and the in-process presence are synchronous behind it).
  await readDone;
  await new Promise((resolve) => setImmediate(resolve));
  const staying = await client(node.url, { token: await token({ sub: 'stays', tid: 'ghostco', role: 'viewer' }) });
  try {
    const ack = await request(staying, 'subscribe', { room });
    if (!('data' in ack)) throw new Error(JSON.stringify(ack));
    await eventually(async () => {
      expect(node.io.of('/').adapter.rooms.get(internal)?.size).toBe(1);
      const again = await request(staying, 'subscribe', { room });
      if (!('data' in again)) throw new Error(JSON.stringify(again));
      expect(again.data.presence.map((m) => m.userId)).toEqual(['stays']);
    });
  } finally {
    staying.close();
  }
});
