import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisCluster, startRedisCluster } from '../../scripts/topology/redis.js';
import { createRateLimits } from '../../server/limits/rate-limits.js';

let cluster: RedisCluster;
const clients: Cluster[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

describe('rate limits on Redis Cluster', () => {
  it('shares one budget between two nodes across many subjects (keys on every shard)', async () => {
    const [a, b] = [new Cluster(cluster.nodes), new Cluster(cluster.nodes)];
    clients.push(a, b);
    await Promise.all([a, b].map((c) => new Promise<void>((r) => c.once('ready', () => r()))));
    const nodeA = createRateLimits({ spec: 'subscribe=2/10', redis: a });
    const nodeB = createRateLimits({ spec: 'subscribe=2/10', redis: b });
    for (let u = 0; u < 12; u++) {
      const subject = `acme:u${u}`;
      await nodeA.consume('subscribe', subject);
      await nodeB.consume('subscribe', subject);
      await expect(nodeA.consume('subscribe', subject)).rejects.toMatchObject({ code: 'rate_limited' });
    }
    const perShard = await Promise.all(a.nodes('master').map((n) => n.dbsize()));
    expect(perShard.filter((n) => n > 0).length).toBeGreaterThan(1);
  });
});
