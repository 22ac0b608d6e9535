import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoard } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { client, startNode } from '../harness/node.js';

// MAX_ROOMS_PER_SOCKET: a socket cannot grow its rooms (node memory, presence entries in Redis) without bound.
let node: FluxoNode;
beforeAll(async () => {
  node = await startNode({ MAX_ROOMS_PER_SOCKET: '2' });
});
afterAll(() => node?.close());

type Ack = { data?: { room?: string }; error?: { code: string; message: string } };

describe('rooms per socket', () => {
  it('refuses one room more with too_many_rooms, before any read; a room it is in, or one freed, is fine', async () => {
    const tenant = `rooms-${randomUUID().slice(0, 8)}`;
    const board = await createBoard(node.url, await token({ sub: 'boss', tid: tenant, role: 'admin' }));
    const s = await client(node.url, { token: await token({ sub: 'u1', tid: tenant }) });
    const ask = (event: string, payload: unknown) =>
      new Promise<Ack>((resolve) => (s.emit as (e: string, p: unknown, ack: (r: Ack) => void) => void)(event, payload, resolve));
    try {
      expect((await ask('subscribe', { room: 'tenant' })).data?.room).toBe('tenant');
      expect((await ask('subscribe', { room: 'user:u1' })).data?.room).toBe('user:u1');
      const refused = await ask('subscribe', { room: `workflow:${board.id}` });
      expect(refused.error?.code).toBe('too_many_rooms');
      expect(refused.error?.message).toContain('MAX_ROOMS_PER_SOCKET');
      // Refused before the room is looked up: a room that does not exist gets the same answer, not not_found.
      expect((await ask('subscribe', { room: `process:${randomUUID()}` })).error?.code).toBe('too_many_rooms');
      // Already in it: not one more.
      expect((await ask('subscribe', { room: 'tenant' })).data?.room).toBe('tenant');
      expect((await ask('unsubscribe', { room: 'user:u1' })).data?.room).toBe('user:u1');
      expect((await ask('subscribe', { room: `workflow:${board.id}` })).data?.room).toBe(`workflow:${board.id}`);
      expect((await ask('subscribe', { room: 'user:u1' })).error?.code).toBe('too_many_rooms');
    } finally {
      s.disconnect();
    }
  });
});
