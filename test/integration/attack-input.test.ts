/**
 * Issue 10, "Why" — the inputs that crashed a node or answered 500, as an attacker sends them, to
 * a real node process (a crash is an exit here, not a failed assertion), directly and through
 * nginx; the race of one socket's events; the demo sign-in that let anyone mint a token. Every
 * answer is typed, the node stays up, and nothing is logged at error level.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NginxHandle, spawnNode, startNginx } from '../../scripts/topology/cluster.js';
import { ERROR_CODES } from '../../shared/errors.js';
import { call, freshAddress, type HostileNode, health, startHostileNode, token, waitFor } from '../harness/hostile.js';
import { type RawSession, sioClient } from '../harness/wire.js';

const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
let node: HostileNode;
let viewer: string;
let admin: string;

beforeAll(async () => {
  node = await startHostileNode({}, { name: 'input' });
  viewer = await token('eve', 'acme', 'viewer');
  admin = await token('ada', 'acme', 'admin');
});
afterAll(() => node?.stop());

async function alive(url = node.url): Promise<void> {
  expect(node.alive(), 'the node exited').toBe(true);
  expect((await health(url)).ok).toBe(true);
}

/** A raw session connected with `tok`; sends `frames` (Socket.IO text) and waits for their acks 1..n, or the close. */
async function sendFrames(
  url: string,
  transport: 'websocket' | 'polling',
  frames: string[],
  tok = viewer,
  oneBatch = false,
): Promise<RawSession> {
  const c = await sioClient(url, { token: tok }, { transport, localAddress: freshAddress() });
  expect(c.connected, JSON.stringify(c.connectError)).toBe(true);
  const packets = frames.map((f) => `4${f}`);
  if (oneBatch) await c.session.send(packets);
  else for (const p of packets) await c.session.send([p]);
  const ids = frames.map((f) => /^2(\d+)\[/.exec(f)?.[1]).filter((x): x is string => x !== undefined);
  await c.session.until(
    (r) => ids.every((id) => r.packets.some((p) => typeof p === 'string' && p.startsWith(`43${id}[`))),
    Date.now() + 15_000,
  );
  return c.session;
}

const ackOf = (s: RawSession, id: number) => s.packets.find((p): p is string => typeof p === 'string' && p.startsWith(`43${id}[`));

describe('one frame used to kill the node', () => {
  for (const transport of ['websocket', 'polling'] as const) {
    it(`answers 10,000 nested arrays in subscribe and presence:update over ${transport} with payload_too_deep, as a viewer`, async () => {
      const s = await sendFrames(node.url, transport, [
        `21["subscribe",${deep(10_000)}]`,
        `22["presence:update",${deep(10_000)}]`,
        `23["presence:update",{"room":"tenant","state":{"a":${deep(5000)}}}]`,
        `24["process:transition",{"processId":"x","to":"y","data":{"a":${deep(10_000)}}}]`,
        `25["subscribe",{"room":"tenant"}]`,
      ]);
      for (const id of [1, 2, 3, 4]) expect(ackOf(s, id), `ack ${id}`).toContain('"payload_too_deep"');
      expect(ackOf(s, 5)).toContain('"data"');
      await s.close();
      await alive();
    });
  }

  it('answers it through nginx, and the node keeps serving the others behind it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fluxo-attack-nginx-'));
    // nginx's workers (not root) write bodies over 16 KB to client_body/ under this dir: mkdtemp's 0700 would make that a 500.
    await chmod(dir, 0o755);
    let nginx: NginxHandle | null = null;
    try {
      nginx = await startNginx(dir, [`127.0.0.1:${node.port}`]);
      for (const transport of ['websocket', 'polling'] as const) {
        const s = await sendFrames(nginx.url, transport, [`21["subscribe",${deep(10_000)}]`, `22["presence:update",${deep(10_000)}]`]);
        expect(ackOf(s, 1), `${transport} through nginx: ${s.closed} ${JSON.stringify(s.packets).slice(0, 300)}`).toContain(
          '"payload_too_deep"',
        );
        expect(ackOf(s, 2)).toContain('"payload_too_deep"');
        await s.close();
      }
      const other = await call(nginx.url, 'GET', '/api/me', { token: viewer });
      expect(other.status).toBe(200);
      await alive(nginx.url);
    } finally {
      await nginx?.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('answers a deeply nested HTTP body with 400 payload_too_deep on every route that reads one', async () => {
    for (const path of ['/api/workflows', '/api/processes', '/api/processes/x/transition', '/auth/session']) {
      const res = await call(node.url, 'POST', path, { token: admin, raw: `{"a":${deep(10_000)}}`, from: freshAddress() });
      expect(res.status, path).toBe(400);
      expect(res.body.error?.code, path).toBe('payload_too_deep');
    }
    await alive();
  });
});

describe('bad input used to answer 500 and log SQL at error level', () => {
  const cursor = (createdAt: string, id: string) => Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
  const cases: [string, string, string, unknown, number, string][] = [
    ['U+0000 in a process id', 'GET', '/api/processes/a%00b', undefined, 400, 'validation_failed'],
    ['U+0000 in a workflow id', 'GET', '/api/workflows/a%00b', undefined, 400, 'validation_failed'],
    ['U+0000 in a transition path', 'POST', '/api/processes/a%00b/transition', { to: 'doing' }, 400, 'validation_failed'],
    ['a cursor "foo 2024"', 'GET', `/api/processes?cursor=${cursor('foo 2024', 'x')}`, undefined, 400, 'bad_request'],
    [
      'a cursor at year +275760',
      'GET',
      `/api/processes?cursor=${cursor('+275760-09-13T00:00:00.000Z', 'x')}`,
      undefined,
      400,
      'bad_request',
    ],
    [
      'a cursor with U+0000 in its id',
      'GET',
      `/api/processes?cursor=${cursor('2026-01-01T00:00:00.000Z', 'a\u0000b')}`,
      undefined,
      400,
      'bad_request',
    ],
    [
      'a stage named constructor',
      'POST',
      '/api/workflows',
      { name: 'w', stages: ['a', 'constructor'], transitions: { a: ['constructor'] } },
      400,
      'validation_failed',
    ],
    [
      'a stage named __proto__',
      'POST',
      '/api/workflows',
      { name: 'w', stages: ['a', '__proto__'], transitions: {} },
      400,
      'validation_failed',
    ],
  ];
  for (const [what, method, path, body, status, code] of cases) {
    it(`answers ${what} with ${status} ${code}`, async () => {
      const res = await call(node.url, method, path, { token: admin, from: freshAddress(), ...(body !== undefined ? { body } : {}) });
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.body.error?.code).toBe(code);
    });
  }

  it('refuses a __proto__ key in transitions instead of dropping it silently', async () => {
    const res = await call(node.url, 'POST', '/api/workflows', {
      token: admin,
      raw: '{"name":"w","stages":["a"],"transitions":{"__proto__":["a"]}}',
    });
    expect(res.status).toBe(400);
    expect(res.body.error?.code).toBe('validation_failed');
  });

  it('moves cards between stages named toString and hasOwnProperty, and refuses moves no own key allows', async () => {
    const wf = await call(node.url, 'POST', '/api/workflows', {
      token: admin,
      body: {
        name: 'Proto',
        stages: ['toString', 'hasOwnProperty', 'valueOf', 'constructorX'],
        transitions: { toString: ['hasOwnProperty'] },
      },
    });
    expect(wf.status).toBe(201);
    const p = await call(node.url, 'POST', '/api/processes', {
      token: admin,
      body: { workflowId: (wf.body.data as { id: string }).id, title: 'p' },
    });
    const id = (p.body.data as { id: string }).id;
    const move = (to: string) => call(node.url, 'POST', `/api/processes/${id}/transition`, { token: admin, body: { to } });
    expect((await move('hasOwnProperty')).status).toBe(200);
    for (const to of ['valueOf', 'toString', 'constructorX']) {
      const res = await move(to);
      expect(res.status, to).toBe(422);
      expect(res.body.error?.code).toBe('invalid_transition');
    }
  });

  it('logged none of it at error level', async () => {
    await alive();
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
  });
});

describe('the events of one socket used to race', () => {
  it('runs subscribe then unsubscribe sent in one long-polling batch in order, 10 times of 10', async () => {
    for (let round = 0; round < 10; round++) {
      const s = await sendFrames(
        node.url,
        'polling',
        [
          '21["subscribe",{"room":"tenant"}]',
          '22["unsubscribe",{"room":"tenant"}]',
          '23["unsubscribe",{"room":"tenant"}]',
          '24["presence:update",{"room":"tenant","state":{}}]',
        ],
        await token(`python-${round}`, 'acme', 'viewer'),
        true,
      );
      const acks = s.packets.filter((p): p is string => typeof p === 'string' && p.startsWith('43'));
      expect(
        acks.map((a) => a.slice(0, 3)),
        `round ${round}: acks in arrival order`,
      ).toEqual(['431', '432', '433', '434']);
      expect(acks[1]).toContain('"data"');
      expect(acks[2]).toContain('"invalid_room"');
      expect(acks[3]).toContain('"invalid_room"');
      await s.close();
    }
  });

  it('answers 20 mixed events of one WebSocket in order, each after the one before', async () => {
    const frames = Array.from({ length: 20 }, (_, i) =>
      i % 3 === 0
        ? `2${i + 1}["subscribe",{"room":"tenant"}]`
        : i % 3 === 1
          ? `2${i + 1}["presence:update",{"room":"tenant","state":{"i":${i}}}]`
          : `2${i + 1}["unsubscribe",{"room":"tenant"}]`,
    );
    const c = await sioClient(node.url, { token: await token('orderly', 'acme', 'viewer') }, { localAddress: freshAddress() });
    await c.session.send(frames.map((f) => `4${f}`));
    await c.session.until((r) => r.packets.filter((p) => typeof p === 'string' && p.startsWith('43')).length >= 20, Date.now() + 15_000);
    const acks = c.session.packets.filter((p): p is string => typeof p === 'string' && p.startsWith('43'));
    expect(acks.map((a) => Number(/^43(\d+)\[/.exec(a)?.[1]))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // In order, every presence:update follows its subscribe and every unsubscribe finds the room.
    expect(
      acks.every((a) => a.includes('"data"')),
      acks.join('\n'),
    ).toBe(true);
    await c.close();
  });
});

describe('the demo sign-in used to let anyone mint a token', () => {
  it('is off with a configured JWT_SECRET (and with DATABASE_URL), and DEV_LOGIN=true is then refused at start', async () => {
    // `node` runs with JWT_SECRET set.
    const login = await call(node.url, 'POST', '/auth/dev-login', { body: { userId: 'ada', tenant: 'victim' }, from: freshAddress() });
    expect(login.status).toBe(404);
    expect(login.body.error?.code).toBe('not_found');
    expect(login.headers['set-cookie']).toBeUndefined();
    expect((await call(node.url, 'GET', '/auth/dev-users', { from: freshAddress() })).status).toBe(404);
    const dir = await mkdtemp(join(tmpdir(), 'fluxo-devlogin-'));
    try {
      await expect(spawnNode({ DEV_LOGIN: 'true' }, join(dir, 'refused.log'), 30_000)).rejects.toThrow(/exited \(78\)/);
      await expect(
        spawnNode(
          { DEV_LOGIN: 'true', JWT_SECRET: '', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
          join(dir, 'refused-db.log'),
          30_000,
        ),
      ).rejects.toThrow(/exited \(78\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is on only in the embedded mode with the built-in development secret, and says so at start', async () => {
    const dev = await startHostileNode({ JWT_SECRET: '' }, { name: 'devlogin' });
    try {
      const login = await call(dev.url, 'POST', '/auth/dev-login', { body: { userId: 'ada', tenant: 'acme' } });
      expect(login.status).toBe(200);
      const { readFile } = await import('node:fs/promises');
      await waitFor(async () => (await readFile(dev.logFile, 'utf8')).includes('DEV_LOGIN is on'), 'the start-up warning about DEV_LOGIN');
    } finally {
      await dev.stop();
    }
  });
});

describe('the node', () => {
  it('is still up, and logged nothing at error level for any of it', async () => {
    await alive();
    expect(ERROR_CODES).toContain('payload_too_deep');
    expect(node.log.problems().map((l) => l.text)).toEqual([]);
  });
});
