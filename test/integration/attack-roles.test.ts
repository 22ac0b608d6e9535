/**
 * Role boundaries on every route and every socket event, against a real node process: viewer <
 * editor < admin. Below the route's role the answer is 403 `forbidden` (HTTP) or an ack with it
 * (socket), and nothing is written; at or above it, the request works. The publish API takes its
 * key only: no user token, whatever its role, opens it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../shared/protocol.js';
import { call, freshAddress, type HostileNode, startHostileNode, token } from '../harness/hostile.js';
import { sioClient } from '../harness/wire.js';

const KEY = 'attack-roles-publish-key-0123456789a';
const ROLES: Role[] = ['viewer', 'editor', 'admin'];
const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };
let node: HostileNode;
let admin: string;
let workflowId: string;

async function newProcess(): Promise<string> {
  const p = await call(node.url, 'POST', '/api/processes', { token: admin, body: { workflowId, title: 'card' } });
  return (p.body.data as { id: string }).id;
}

async function version(id: string): Promise<number> {
  return ((await call(node.url, 'GET', `/api/processes/${id}`, { token: admin })).body.data as { version: number }).version;
}

async function counts(): Promise<{ workflows: number; processes: number }> {
  const w = await call(node.url, 'GET', '/api/workflows', { token: admin });
  const p = await call(node.url, 'GET', '/api/processes?limit=500', { token: admin });
  return { workflows: (w.body.data as unknown[]).length, processes: (p.body.data as unknown[]).length };
}

beforeAll(async () => {
  node = await startHostileNode({ PUBLISH_API_KEY: KEY }, { name: 'roles' });
  admin = await token('root', 'acme', 'admin');
  const wf = await call(node.url, 'POST', '/api/workflows', {
    token: admin,
    body: { name: 'Board', stages: ['todo', 'doing', 'done'], transitions: { todo: ['doing'], doing: ['done', 'todo'] } },
  });
  workflowId = (wf.body.data as { id: string }).id;
});
afterAll(() => node?.stop());

describe('HTTP routes by role', () => {
  const routes: {
    name: string;
    method: string;
    path: () => Promise<string>;
    body?: () => unknown;
    needs: Role;
    status: number;
    writes?: 'workflows' | 'processes' | 'transition';
  }[] = [
    { name: 'GET /api/me', method: 'GET', path: async () => '/api/me', needs: 'viewer', status: 200 },
    { name: 'GET /api/workflows', method: 'GET', path: async () => '/api/workflows', needs: 'viewer', status: 200 },
    { name: 'GET /api/workflows/:id', method: 'GET', path: async () => `/api/workflows/${workflowId}`, needs: 'viewer', status: 200 },
    { name: 'GET /api/processes', method: 'GET', path: async () => '/api/processes', needs: 'viewer', status: 200 },
    {
      name: 'GET /api/processes/:id',
      method: 'GET',
      path: async () => `/api/processes/${await newProcess()}`,
      needs: 'viewer',
      status: 200,
    },
    { name: 'GET /api/events?room=tenant', method: 'GET', path: async () => '/api/events?room=tenant', needs: 'viewer', status: 200 },
    {
      name: 'GET /api/events?room=workflow:<id>',
      method: 'GET',
      path: async () => `/api/events?room=workflow:${workflowId}`,
      needs: 'viewer',
      status: 200,
    },
    {
      name: 'POST /api/workflows',
      method: 'POST',
      path: async () => '/api/workflows',
      body: () => ({ name: 'w', stages: ['a'], transitions: {} }),
      needs: 'admin',
      status: 201,
      writes: 'workflows',
    },
    {
      name: 'POST /api/processes',
      method: 'POST',
      path: async () => '/api/processes',
      body: () => ({ workflowId, title: 'p' }),
      needs: 'editor',
      status: 201,
      writes: 'processes',
    },
    {
      name: 'POST /api/processes/:id/transition',
      method: 'POST',
      path: async () => `/api/processes/${await newProcess()}/transition`,
      body: () => ({ to: 'doing' }),
      needs: 'editor',
      status: 200,
      writes: 'transition',
    },
  ];

  for (const role of ROLES) {
    for (const r of routes) {
      const allowed = RANK[role] >= RANK[r.needs];
      it(`${role}: ${r.name} (${r.needs}+) → ${allowed ? r.status : 403}`, async () => {
        const t = await token(`u-${role}`, 'acme', role);
        const path = await r.path();
        const before = await counts();
        const res = await call(node.url, r.method, path, { token: t, from: freshAddress(), ...(r.body ? { body: r.body() } : {}) });
        if (allowed) {
          expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(r.status);
          return;
        }
        expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(403);
        expect(res.body.error?.code).toBe('forbidden');
        expect(await counts()).toEqual(before);
        if (r.writes === 'transition') expect(await version(path.split('/')[3]!)).toBe(1);
      });
    }
  }

  it('never opens the publish API to a user token, whatever its role', async () => {
    for (const role of ROLES) {
      const res = await call(node.url, 'POST', '/api/publish', {
        token: await token(`u-${role}`, 'acme', role),
        from: freshAddress(),
        body: { tenant: 'acme', room: 'tenant', type: 'custom', data: {} },
      });
      expect(res.status, role).toBe(401);
      expect(res.body.error?.code).toBe('unauthorized');
    }
    const ok = await call(node.url, 'POST', '/api/publish', {
      token: KEY,
      body: { tenant: 'acme', room: 'tenant', type: 'custom', data: {} },
    });
    expect(ok.status).toBe(201);
  });
});

describe('socket events by role', () => {
  for (const role of ROLES) {
    it(`${role}: subscribe, presence and refresh work; process:transition ${RANK[role] >= 1 ? 'works' : 'is forbidden and writes nothing'}`, async () => {
      const t = await token(`s-${role}`, 'acme', role);
      const s = await sioClient(node.url, { token: t }, { localAddress: freshAddress() });
      try {
        expect(s.connected).toBe(true);
        expect(await s.ask('subscribe', { room: 'tenant' })).toMatchObject({ data: { room: 'tenant' } });
        expect(await s.ask('subscribe', { room: `workflow:${workflowId}` })).toMatchObject({ data: {} });
        expect(await s.ask('presence:update', { room: 'tenant', state: { status: 'here' } })).toMatchObject({ data: {} });
        expect(await s.ask('unsubscribe', { room: `workflow:${workflowId}` })).toMatchObject({ data: {} });
        expect(await s.ask('auth:refresh', { token: await token(`s-${role}`, 'acme', role) })).toMatchObject({ data: {} });
        const id = await newProcess();
        const ack = await s.ask('process:transition', { processId: id, to: 'doing' });
        if (RANK[role] >= 1) {
          expect(ack).toMatchObject({ data: { process: { stage: 'doing' } } });
        } else {
          expect(ack).toMatchObject({ error: { code: 'forbidden' } });
          expect(await version(id)).toBe(1);
        }
      } finally {
        await s.close();
      }
    });
  }

  it('logged nothing at error level', () => {
    expect(node.alive()).toBe(true);
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
  });
});
