import { EventEmitter } from 'node:events';
import type { Cluster } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { type ShardWatch, watchShards } from '../../server/bus/shards.js';
import type { Logger } from '../../server/ops/logger.js';
import { eventually } from '../harness/node.js';

/**
 * Two masters, `a` (slot 0) and `b` (slot 1), as the two Cluster clients see them: a channel's slot
 * is its last digit's parity. A master `down` drops what is published on it; a `frozen` one holds it
 * until thawed.
 */
function fakeCluster() {
  const sub = Object.assign(new EventEmitter(), { ssubscribe: async () => 1 });
  const state: Record<string, 'up' | 'down' | 'frozen'> = { a: 'up', b: 'up' };
  const held: (() => void)[] = [];
  const masterOf = (channel: string) => (Number(channel.at(-1)) % 2 === 0 ? 'a' : 'b');
  const pub = Object.assign(new EventEmitter(), {
    slots: [['a'], ['b']],
    cluster: async (_: 'KEYSLOT', channel: string) => (masterOf(channel) === 'a' ? 0 : 1),
    spublish: async (channel: string, message: string) => {
      const deliver = () => sub.emit('smessageBuffer', Buffer.from(channel), Buffer.from(message));
      const s = state[masterOf(channel)];
      if (s === 'up') setImmediate(deliver);
      else if (s === 'frozen') held.push(deliver);
      return 0;
    },
  });
  const thaw = () => {
    for (const d of held.splice(0)) d();
  };
  return { pub: pub as unknown as Cluster, sub: sub as unknown as Cluster, state, thaw };
}

const quiet = { warn() {}, info() {}, debug() {} } as unknown as Logger;
let watch: ShardWatch | undefined;
afterEach(() => watch?.close());

function start(c: ReturnType<typeof fakeCluster>) {
  const seen = { lost: 0, whole: 0 };
  watch = watchShards({
    pub: c.pub,
    sub: c.sub,
    prefix: 't',
    everyMs: 20,
    log: quiet,
    onLost: () => seen.lost++,
    onWhole: () => seen.whole++,
  });
  return seen;
}

describe('the shard watch of a Redis Cluster bus', () => {
  it('is whole once the first probe of every master is back', async () => {
    const seen = start(fakeCluster());
    expect(watch?.broken()).toEqual(['a', 'b']);
    await eventually(() => expect(watch?.broken()).toEqual([]));
    expect(seen.lost).toBe(0);
  });

  it('counts a master whose connection ended as lost, and whole again only when a probe sent after it is back', async () => {
    const c = fakeCluster();
    const seen = start(c);
    await eventually(() => expect(watch?.broken()).toEqual([]));
    const wholeBefore = seen.whole;
    c.state.b = 'down';
    // As the shard subscriber's end is told: with its node key.
    c.sub.emit('-node', null, 'b');
    expect(seen.lost).toBe(1);
    expect(watch?.broken()).toEqual(['b']);
    // A connection the watch cannot name makes every master suspect until its next probe is back.
    c.pub.emit('-node', undefined);
    expect(watch?.broken()).toEqual(['a', 'b']);
    await eventually(() => expect(watch?.broken()).toEqual(['b']));
    await new Promise((r) => setTimeout(r, 100));
    expect(watch?.broken()).toEqual(['b']);
    expect(seen.whole).toBe(wholeBefore);
    c.state.b = 'up';
    await eventually(() => expect(watch?.broken()).toEqual([]));
    expect(seen.whole).toBe(wholeBefore + 1);
  });

  it('counts a frozen master as not delivering, not as lost', async () => {
    const c = fakeCluster();
    const seen = start(c);
    await eventually(() => expect(watch?.broken()).toEqual([]));
    c.state.a = 'frozen';
    await eventually(() => expect(watch?.broken()).toEqual(['a']));
    c.state.a = 'up';
    c.thaw();
    await eventually(() => expect(watch?.broken()).toEqual([]));
    expect(seen.lost).toBe(0);
  });
});
