import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { PresenceDiff } from '../../shared/protocol.js';
import { client, eventually, request, startNode } from '../harness/node.js';

let node: FluxoNode;
beforeAll(async () => {
  node = await startNode();
});
afterAll(() => node?.close());

describe('presence', () => {
  it('counts a user once across two tabs, sends joins, updates and leaves, and keeps tenants apart', async () => {
    const ada = await token({ sub: 'ada', tid: 'acme', name: 'Ada' });
    const watcher = await client(node.url, { token: await token({ sub: 'bob', tid: 'acme' }) });
    const diffs: PresenceDiff[] = [];
    watcher.on('presence', (d) => diffs.push(d));
    await request(watcher, 'subscribe', { room: 'tenant' });

    const tab1 = await client(node.url, { token: ada });
    const tab2 = await client(node.url, { token: ada });
    const other = await client(node.url, { token: await token({ sub: 'ada', tid: 'globex' }) });
    try {
      await request(tab1, 'subscribe', { room: 'tenant' });
      const second = await request(tab2, 'subscribe', { room: 'tenant' });
      if (!('data' in second)) throw new Error(JSON.stringify(second));
      const adaEntry = second.data.presence.find((m) => m.userId === 'ada');
      expect(adaEntry).toMatchObject({ name: 'Ada', connections: 2 });
      expect(second.data.presence.map((m) => m.userId).sort()).toEqual(['ada', 'bob']);

      const globex = await request(other, 'subscribe', { room: 'tenant' });
      if (!('data' in globex)) throw new Error(JSON.stringify(globex));
      expect(globex.data.presence.map((m) => m.userId)).toEqual(['ada']);
      expect(globex.data.presence[0]?.connections).toBe(1);

      await request(tab1, 'presence:update', { room: 'tenant', state: { status: 'editing' } });
      await eventually(() =>
        expect(diffs.some((d) => [...d.joins, ...d.updates].some((u) => u.userId === 'ada' && u.state?.status === 'editing'))).toBe(true),
      );

      tab1.close();
      await eventually(() => expect(diffs.some((d) => d.updates.some((u) => u.userId === 'ada' && u.connections === 1))).toBe(true));
      expect(diffs.some((d) => d.leaves.includes('ada'))).toBe(false);
      tab2.close();
      await eventually(() => expect(diffs.some((d) => d.leaves.includes('ada'))).toBe(true));
      expect(diffs.filter((d) => d.joins.some((j) => j.userId === 'ada'))).toHaveLength(1);
      expect(diffs.every((d) => d.room === 'tenant')).toBe(true);
    } finally {
      tab1.close();
      tab2.close();
      other.close();
      watcher.close();
    }
  });
});
