import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/topology/ports.js';
import { createApp, type FluxoNode } from '../../server/app.js';
import type { TokenVerifier } from '../../server/auth/types.js';
import { localBackplane } from '../../server/backplane.js';
import { AppError } from '../../server/errors.js';
import { createRateLimits } from '../../server/limits/rate-limits.js';
import { createMetrics } from '../../server/ops/metrics.js';
import { UNBOUNDED } from '../../server/presence/presence.js';
import { client, eventually, request, testConfig } from '../harness/node.js';

// createApp builds a node (Fastify's build()); listen() starts it; close() stops it, started or not.

const nodes: FluxoNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.close()));
});

/** True when a TCP connect to the port is refused: nothing listens there. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('a node built by createApp', () => {
  it('does not listen nor migrate until listen(), then serves; close() stops it', async () => {
    const port = await freePort();
    const node = await createApp(testConfig({ PORT: String(port) }));
    nodes.push(node);
    expect(() => node.url).toThrow(/not listening/);
    expect(await refused(port)).toBe(true);
    // No migration yet: the schema is not there (42P01 undefined_table).
    await expect(node.store.listWorkflows('acme')).rejects.toMatchObject({
      cause: { code: '42P01', message: 'relation "workflows" does not exist' },
    });
    expect(await node.listen()).toBe(`http://127.0.0.1:${port}`);
    expect(node.port).toBe(port);
    expect((await fetch(`${node.url}/ready`)).status).toBe(200);
    await node.close();
    expect(await refused(port)).toBe(true);
  });

  it('closes without ever listening, and cannot be started once closed', async () => {
    const node = await createApp(testConfig());
    await node.close();
    await expect(node.listen()).rejects.toThrow(/closed/);
  });

  it('takes its parts from the caller: verifier, budgets, backplane and metrics', async () => {
    const config = testConfig({ NODE_ID: 'built' });
    const metrics = createMetrics(config.nodeId);
    const backplane = localBackplane({ metrics, self: { nodeId: config.nodeId, version: 'test', startedAt: new Date().toISOString() } });
    const verifier: TokenVerifier = {
      verify: async (token) => {
        if (token !== 'let-me-in') throw new AppError('token_invalid');
        return {
          userId: 'ada',
          tenant: 'acme',
          role: 'editor',
          name: 'Ada',
          exp: Math.floor(Date.now() / 1000) + 3600,
          revocationKey: 'k',
        };
      },
    };
    const node = await createApp(config, { metrics, backplane, verifier, limits: createRateLimits({ spec: 'subscribe=1/60' }) });
    nodes.push(node);
    await node.listen();
    const socket = await client(node.url, { token: 'let-me-in' });
    try {
      expect(await request(socket, 'subscribe', { room: 'tenant' })).toHaveProperty('data');
      // The injected presence holds the member; the injected budget (1 subscribe a minute) refuses the next.
      expect((await backplane.presence.snapshot('t:acme:tenant', UNBOUNDED)).members.map((m) => m.userId)).toEqual(['ada']);
      expect(await request(socket, 'subscribe', { room: 'tenant' })).toMatchObject({ error: { code: 'rate_limited' } });
      await eventually(async () =>
        expect(await metrics.registry.getSingleMetricAsString('ws_limit_refusals_total')).toContain('subscribe'),
      );
    } finally {
      socket.close();
    }
  });
});
