import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { client, request, startNode } from '../harness/node.js';

let node: FluxoNode;
beforeAll(async () => {
  node = await startNode({ RATE_LIMITS: 'process:transition=3/60,http:read=5/60' });
});
afterAll(() => node?.close());

describe('rate limits', () => {
  it('refuses the fourth socket transition with rate_limited and retryAfterMs, and counts it', async () => {
    const admin = await token({ sub: 'rl-admin', tid: 'acme', role: 'admin' });
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    const s = await client(node.url, { token: await token({ sub: 'rl', tid: 'acme' }) });
    try {
      const moves = ['doing', 'todo', 'doing', 'done'];
      const acks = [];
      for (const to of moves) acks.push(await request(s, 'process:transition', { processId: proc.id, to }));
      expect(acks.slice(0, 3).every((a) => 'data' in a)).toBe(true);
      expect(acks[3]).toMatchObject({ error: { code: 'rate_limited', retryAfterMs: expect.any(Number) } });
      const metrics = await api<string>(node.url, 'GET', '/metrics');
      expect(metrics.body).toMatch(/^ws_limit_refusals_total\{[^}]*limit="process:transition"[^}]*\} 1$/m);
      expect(metrics.body).not.toMatch(/^http_limit_refusals_total\{[^}]*limit="process:transition"/m);
    } finally {
      s.close();
    }
  });

  it('answers HTTP over the limit with 429 and Retry-After', async () => {
    const t = await token({ sub: 'reader', tid: 'acme', role: 'viewer' });
    const statuses: number[] = [];
    let last: Awaited<ReturnType<typeof api>> | null = null;
    for (let i = 0; i < 6; i++) {
      last = await api(node.url, 'GET', '/api/workflows', { token: t });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect(Number(last?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(last?.body).toMatchObject({ error: { code: 'rate_limited' } });
    // Counted as an HTTP refusal, not a socket one.
    const metrics = await api<string>(node.url, 'GET', '/metrics');
    expect(metrics.body).toMatch(/^http_limit_refusals_total\{[^}]*limit="http:read"[^}]*\} 1$/m);
    expect(metrics.body).not.toMatch(/^ws_limit_refusals_total\{[^}]*limit="http:read"/m);
  });
});
