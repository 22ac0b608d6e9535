import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { REPLAY_LIMIT } from '../../server/realtime/handlers.js';
import type { FluxoEvent } from '../../shared/protocol.js';
import { connect } from '../../shared/sdk/index.js';
import { client, collect, eventually, request, startNode } from '../harness/node.js';

const KEY = 'replay-publish-key-0123456789';
let node: FluxoNode;

beforeAll(async () => {
  node = await startNode({ PUBLISH_API_KEY: KEY, RATE_LIMITS: 'publish=100000/1,subscribe=100000/1' });
});
afterAll(() => node?.close());

/**
 * Publishes `n` events to the tenant room in batches of up to 50, 8 requests in flight; returns their
 * ids. Batches: one request per event took over 30 s for 1,000+ events on a loaded machine.
 */
async function publish(tenant: string, n: number): Promise<number[]> {
  const ids: number[] = [];
  let left = n;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (left > 0) {
        const size = Math.min(50, left);
        left -= size;
        const res = await api<{ data: FluxoEvent[] }>(node.url, 'POST', '/api/publish', {
          headers: { authorization: `Bearer ${KEY}` },
          body: { events: Array.from({ length: size }, () => ({ tenant, room: 'tenant', type: 'replay', data: {} })) },
        });
        expect(res.status).toBe(201);
        expect(res.body.data).toHaveLength(size);
        ids.push(...res.body.data.map((e) => e.id));
      }
    }),
  );
  return ids.sort((a, b) => a - b);
}

describe('replay beyond one subscribe ack', () => {
  it('pages on truncated; events committed while paging come live, none is lost', async () => {
    // The second page is then the last, read ahead before the five below commit: they must come live.
    const stored = await publish('rp-a', REPLAY_LIMIT + 50);
    const socket = await client(node.url, { token: await token({ sub: 'u', tid: 'rp-a', role: 'viewer' }) });
    try {
      const live = collect(socket);
      const got: number[] = [];
      let after = 0;
      let later: number[] = [];
      for (let page = 0; ; page++) {
        const ack = await request(socket, 'subscribe', { room: 'tenant', after });
        if (!('data' in ack)) throw new Error(JSON.stringify(ack));
        got.push(...ack.data.events.map((e) => e.id));
        // Committed after the server began reading the next page ahead.
        if (page === 0) later = await publish('rp-a', 5);
        if (!ack.data.truncated) break;
        after = ack.data.events[ack.data.events.length - 1]!.id;
      }
      await eventually(() => expect(live.events.map((e) => e.id)).toEqual(expect.arrayContaining(later)));
      const all = [...new Set([...got, ...live.events.map((e) => e.id)])].sort((a, b) => a - b);
      expect(all).toEqual([...stored, ...later]);
      expect(got).toEqual([...got].sort((a, b) => a - b));
    } finally {
      socket.close();
    }
  });

  it('the SDK delivers a replay of several pages once each, in id order', async () => {
    const stored = await publish('rp-b', REPLAY_LIMIT + 300);
    const sdk = connect({ url: node.url, token: await token({ sub: 'u', tid: 'rp-b', role: 'viewer' }), transports: ['websocket'] });
    try {
      await sdk.whenConnected();
      const seen: number[] = [];
      const stop = sdk.subscribe('tenant', (e) => seen.push(e.id), { after: 0 });
      await stop.ready;
      await eventually(() => expect(seen).toEqual(stored));
    } finally {
      sdk.close();
    }
  });
});
