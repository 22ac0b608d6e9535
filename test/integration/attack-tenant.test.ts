/**
 * Cross-tenant attempts against a real node process, with a spy of the victim tenant subscribed to
 * every room it has (tenant, workflow, process, its user room) the whole time. Every attempt must
 * be refused with a typed error, and after a barrier event the spy must have received nothing else;
 * the attacker's sockets must not receive anything of the victim either.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../shared/errors.js';
import {
  call,
  claimsOf,
  forgeToken,
  freshAddress,
  type HostileNode,
  type Spy,
  startHostileNode,
  startSpy,
  token,
} from '../harness/hostile.js';
import { type SioClient, sioClient } from '../harness/wire.js';

const KEY = 'attack-tenant-publish-key-0123456789';
let node: HostileNode;
let spy: Spy;
let attackerAdmin: string;
let victim: { admin: string; workflow: string; process: string };
let attacker: { workflow: string; process: string };
const open: SioClient[] = [];

let attackers = 0;
/** A socket of a fresh attacker (an admin of acme): each has its own per-user budgets. */
async function attackerSocket(tok?: string): Promise<SioClient> {
  const s = await sioClient(
    node.url,
    { token: tok ?? (await token(`mallory-${++attackers}`, 'acme', 'admin')) },
    { localAddress: freshAddress() },
  );
  open.push(s);
  return s;
}

beforeAll(async () => {
  node = await startHostileNode({ PUBLISH_API_KEY: KEY }, { name: 'tenant' });
  attackerAdmin = await token('mallory', 'acme', 'admin');
  const victimAdmin = await token('victim-admin', 'globex', 'admin');
  const board = { name: 'Board', stages: ['todo', 'doing', 'done'], transitions: { todo: ['doing'], doing: ['done', 'todo'] } };
  const vw = await call(node.url, 'POST', '/api/workflows', { token: victimAdmin, body: board });
  const vp = await call(node.url, 'POST', '/api/processes', {
    token: victimAdmin,
    body: { workflowId: (vw.body.data as { id: string }).id, title: 'secret' },
  });
  victim = { admin: victimAdmin, workflow: (vw.body.data as { id: string }).id, process: (vp.body.data as { id: string }).id };
  const aw = await call(node.url, 'POST', '/api/workflows', { token: attackerAdmin, body: board });
  const ap = await call(node.url, 'POST', '/api/processes', {
    token: attackerAdmin,
    body: { workflowId: (aw.body.data as { id: string }).id, title: 'mine' },
  });
  attacker = { workflow: (aw.body.data as { id: string }).id, process: (ap.body.data as { id: string }).id };
  // The spy's user id is also the attacker's in its own tenant: ids are per tenant.
  spy = await startSpy(node.url, {
    tenant: 'globex',
    userId: 'spy',
    rooms: [`workflow:${victim.workflow}`, `process:${victim.process}`, 'user:spy'],
    publishKey: KEY,
  });
});
afterAll(async () => {
  spy?.close();
  for (const s of open) await s.close();
  await node?.stop();
});

const isTypedError = (ack: unknown) => {
  const code = (ack as { error?: { code?: string } })?.error?.code;
  return typeof code === 'string' && ERROR_CODES.includes(code as never) && code !== 'internal';
};

describe('another tenant cannot be reached', () => {
  it('refuses every spelling of the victim tenant rooms on subscribe, presence:update and unsubscribe', async () => {
    const { workflow: w, process: p } = victim;
    const rooms = [
      't:globex:tenant',
      `t:globex:workflow:${w}`,
      `t:globex:process:${p}`,
      't:globex:user:spy',
      `t:acme:t:globex:tenant`,
      `process:${p}`,
      `workflow:${w}`,
      `process:${p.toUpperCase()}`,
      `process:${p} `,
      ` process:${p}`,
      `process:${p}\u0000`,
      `process:../globex/${p}`,
      `PROCESS:${p}`,
      `workflow:${w}/..`,
      'tenant:globex',
      'globex:tenant',
      'globex',
      'T:GLOBEX:TENANT',
      't%3Aglobex%3Atenant',
      't\uff1aglobex\uff1atenant',
      'user:victim-admin',
      'rk:anything',
      `process:${'x'.repeat(200)}`,
    ];
    for (const room of rooms) {
      const s = await attackerSocket();
      expect(s.connected).toBe(true);
      const sub = await s.ask('subscribe', { room });
      expect(isTypedError(sub), `subscribe ${JSON.stringify(room)} → ${JSON.stringify(sub)}`).toBe(true);
      const pres = await s.ask('presence:update', { room, state: { status: 'spying' } });
      expect(isTypedError(pres), `presence:update ${JSON.stringify(room)} → ${JSON.stringify(pres)}`).toBe(true);
      const unsub = await s.ask('unsubscribe', { room });
      expect(isTypedError(unsub), `unsubscribe ${JSON.stringify(room)} → ${JSON.stringify(unsub)}`).toBe(true);
      expect(isTypedError(await s.ask('subscribe', { room, after: 0 })), `replay of ${JSON.stringify(room)}`).toBe(true);
      await s.close();
    }
    // Its own rooms of the same names are its own: `user:spy` of acme is not the spy's.
    const own = (await attackerSocket(await token('spy', 'acme', 'viewer'))) as SioClient;
    expect(await own.ask('subscribe', { room: 'user:spy' })).toMatchObject({ data: { room: 'user:spy' } });
    expect(await own.ask('presence:update', { room: 'user:spy', state: { status: 'here' } })).toMatchObject({ data: {} });
    await spy.assertNothingElse();
  });

  it("refuses the victim's workflow and process ids over HTTP and the socket", async () => {
    const { workflow: w, process: p } = victim;
    const from = freshAddress();
    const as = (method: string, path: string, body?: unknown) =>
      call(node.url, method, path, { token: attackerAdmin, from, ...(body ? { body } : {}) });
    for (const [method, path, body, status] of [
      ['GET', `/api/processes/${p}`, undefined, 404],
      ['GET', `/api/workflows/${w}`, undefined, 404],
      ['POST', `/api/processes/${p}/transition`, { to: 'doing' }, 404],
      ['POST', '/api/processes', { workflowId: w, title: 'planted' }, 404],
      ['GET', `/api/events?room=${encodeURIComponent(`process:${p}`)}`, undefined, 404],
      ['GET', `/api/events?room=${encodeURIComponent(`workflow:${w}`)}`, undefined, 404],
      ['GET', `/api/events?room=${encodeURIComponent('t:globex:tenant')}`, undefined, 400],
      ['GET', `/api/events?room=${encodeURIComponent('user:spy')}`, undefined, 403],
    ] as [string, string, unknown, number][]) {
      const res = await as(method, path, body);
      expect(res.status, `${method} ${path} → ${JSON.stringify(res.body)}`).toBe(status);
      expect(ERROR_CODES).toContain(res.body.error?.code);
    }
    // Filters by the victim's ids find nothing in the attacker's tenant.
    const list = await as('GET', `/api/processes?workflowId=${w}`);
    expect(list.status).toBe(200);
    expect(list.body.data).toEqual([]);
    const events = await as('GET', '/api/events?room=tenant&limit=1000');
    expect(JSON.stringify(events.body)).not.toContain(p);
    const s = await attackerSocket();
    const ack = await s.ask('process:transition', { processId: p, to: 'doing' });
    expect(ack).toMatchObject({ error: { code: 'not_found' } });
    const proc = await call(node.url, 'GET', `/api/processes/${p}`, { token: victim.admin });
    expect((proc.body.data as { version: number; stage: string }).stage).toBe('todo');
    await spy.assertNothingElse();
  });

  it('refuses the publish API without its key, and never lets a room name carry a tenant', async () => {
    const from = freshAddress();
    const event = { tenant: 'globex', room: 'tenant', type: 'planted', data: {} };
    for (const auth of [undefined, 'wrong-key-wrong-key-wrong-key', attackerAdmin, `${KEY}x`, KEY.slice(0, -1), KEY.toUpperCase()]) {
      const res = await call(node.url, 'POST', '/api/publish', {
        from,
        body: event,
        ...(auth ? { headers: { authorization: `Bearer ${auth}` } } : {}),
      });
      expect(res.status, `key ${String(auth).slice(0, 12)}`).toBe(401);
      expect(res.body.error?.code).toBe('unauthorized');
    }
    for (const room of ['t:globex:tenant', `t:globex:process:${victim.process}`, 'globex:tenant']) {
      const res = await call(node.url, 'POST', '/api/publish', { token: KEY, body: { tenant: 'acme', room, type: 'planted', data: {} } });
      expect(res.status, room).toBe(400);
      expect(res.body.error?.code).toBe('invalid_room');
    }
    await spy.assertNothingElse();
  });

  it('refuses forged tokens of the victim tenant and a refresh into it', async () => {
    const forged = [
      forgeToken({ alg: 'HS256', typ: 'JWT' }, claimsOf('mallory', 'globex', 'admin'), 'a-secret-that-is-not-the-node-secret!!'),
      forgeToken({ alg: 'none', typ: 'JWT' }, claimsOf('mallory', 'globex', 'admin'), null),
    ];
    for (const t of forged) {
      const s = await sioClient(node.url, { token: t }, { localAddress: freshAddress() });
      open.push(s);
      expect(s.connected).toBe(false);
      expect((s.connectError as { data?: { code?: string } }).data?.code).toBe('token_invalid');
      const res = await call(node.url, 'GET', '/api/me', { token: t, from: freshAddress() });
      expect(res.status).toBe(401);
    }
    // A user with accounts in both tenants cannot move a socket from one to the other.
    const s = await attackerSocket();
    const refresh = await s.ask('auth:refresh', { token: await token('mallory', 'globex', 'admin') });
    expect(refresh).toMatchObject({ error: { code: 'forbidden' } });
    expect(await s.ask('subscribe', { room: `process:${victim.process}` })).toMatchObject({ error: { code: 'not_found' } });
    await spy.assertNothingElse();
  });

  it("delivers the victim's own activity to the spy and none of it to the attacker", async () => {
    const s = await attackerSocket();
    expect(await s.ask('subscribe', { room: 'tenant' })).toMatchObject({ data: {} });
    expect(await s.ask('subscribe', { room: `process:${attacker.process}` })).toMatchObject({ data: {} });
    const moved = await call(node.url, 'POST', `/api/processes/${victim.process}/transition`, {
      token: victim.admin,
      body: { to: 'doing' },
    });
    expect(moved.status).toBe(200);
    const eventId = (moved.body.data as { event: { id: number } }).event.id;
    await spy.assertNothingElse((e) => e.event === 'event' && (e.args[0] as { id: number }).id === eventId);
    // The attacker's own barrier: an event to its tenant room, then nothing of globex before it.
    const mine = await call(node.url, 'POST', '/api/publish', {
      token: KEY,
      body: { tenant: 'acme', room: 'tenant', type: 'acme.barrier', data: {} },
    });
    expect(mine.status).toBe(201);
    await s.session.until((r) => JSON.stringify(r.packets).includes('acme.barrier'), Date.now() + 10_000);
    const seen = JSON.stringify(s.events());
    expect(seen).toContain('acme.barrier');
    expect(seen).not.toContain(victim.process);
    expect(seen).not.toContain(victim.workflow);
    expect(seen).not.toContain('globex');
  });

  it('logged nothing at error level', async () => {
    await spy.assertNothingElse();
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
    expect(node.alive()).toBe(true);
  });
});
