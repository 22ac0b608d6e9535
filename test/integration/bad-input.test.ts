import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { ERROR_CODES } from '../../shared/errors.js';
import { type Client, client, request, startNode } from '../harness/node.js';

let node: FluxoNode;
let admin: string;
let socket: Client;

beforeAll(async () => {
  node = await startNode({ MAX_PAYLOAD_BYTES: '2048' });
  admin = await token({ sub: 'root', tid: 'acme', role: 'admin' });
  socket = await client(node.url, { token: admin });
});
afterAll(async () => {
  socket?.close();
  await node?.close();
});

type ErrBody = { error: { code: string; message: string } };

describe('bad input over HTTP gets a typed error', () => {
  const cases: [string, () => Promise<{ status: number; body: unknown }>, number, string][] = [
    ['malformed JSON', () => api(node.url, 'POST', '/api/workflows', { token: admin, raw: '{"name":' }), 400, 'invalid_json'],
    [
      'wrong types',
      () => api(node.url, 'POST', '/api/workflows', { token: admin, body: { name: 5, stages: 'x', transitions: [] } }),
      400,
      'validation_failed',
    ],
    [
      'unknown fields',
      () => api(node.url, 'POST', '/api/workflows', { token: admin, body: { name: 'a', stages: ['a'], transitions: {}, extra: 1 } }),
      400,
      'validation_failed',
    ],
    [
      'not JSON content type',
      () => api(node.url, 'POST', '/api/workflows', { token: admin, raw: 'x', headers: { 'content-type': 'text/plain' } }),
      415,
      'unsupported_media_type',
    ],
    [
      'a body over MAX_PAYLOAD_BYTES',
      () => api(node.url, 'POST', '/api/workflows', { token: admin, raw: JSON.stringify({ name: 'x'.repeat(5000) }) }),
      413,
      'payload_too_large',
    ],
    ['no token', () => api(node.url, 'GET', '/api/workflows'), 401, 'unauthorized'],
    ['a garbage token', () => api(node.url, 'GET', '/api/workflows', { token: 'garbage' }), 401, 'token_invalid'],
    ['an unknown route', () => api(node.url, 'GET', '/api/nope', { token: admin }), 404, 'not_found'],
    ['a wrong method', () => api(node.url, 'DELETE', '/api/workflows', { token: admin }), 405, 'method_not_allowed'],
    ['an unknown process id', () => api(node.url, 'GET', '/api/processes/does-not-exist', { token: admin }), 404, 'not_found'],
    ['a bad room in the events query', () => api(node.url, 'GET', '/api/events?room=../../etc', { token: admin }), 400, 'invalid_room'],
    [
      'a prototype-polluting key',
      () =>
        api(node.url, 'POST', '/api/processes', {
          token: admin,
          raw: '{"workflowId":"w","title":"t","data":{"__proto__":{"polluted":true}}}',
        }),
      400,
      'validation_failed',
    ],
    ['U+0000 in a process id path', () => api(node.url, 'GET', '/api/processes/a%00b', { token: admin }), 400, 'validation_failed'],
    ['U+0000 in a workflow id path', () => api(node.url, 'GET', '/api/workflows/a%00b', { token: admin }), 400, 'validation_failed'],
    [
      'U+0000 in a transition path',
      () => api(node.url, 'POST', '/api/processes/a%00b/transition', { token: admin, body: { to: 'doing' } }),
      400,
      'validation_failed',
    ],
    ...(
      [
        ['a cursor with a date JavaScript accepts and Postgres does not', ['foo 2024', 'x']],
        ['a cursor with a year past 9999', ['+275760-09-13T00:00:00.000Z', 'x']],
        ['a cursor with U+0000 in its id', ['2026-01-01T00:00:00.000Z', 'a\0b']],
      ] as const
    ).map(
      ([what, key]) =>
        [
          what,
          () => api(node.url, 'GET', `/api/processes?cursor=${Buffer.from(JSON.stringify(key)).toString('base64url')}`, { token: admin }),
          400,
          'bad_request',
        ] as [string, () => Promise<{ status: number; body: unknown }>, number, string],
    ),
    ...['constructor', '__proto__', 'prototype'].map(
      (name) =>
        [
          `a stage named ${name}`,
          () =>
            api(node.url, 'POST', '/api/workflows', {
              token: admin,
              body: { name: 'w', stages: ['a', name], transitions: { a: [name] } },
            }),
          400,
          'validation_failed',
        ] as [string, () => Promise<{ status: number; body: unknown }>, number, string],
    ),
    [
      'a __proto__ key in transitions',
      () => api(node.url, 'POST', '/api/workflows', { token: admin, raw: '{"name":"w","stages":["a"],"transitions":{"__proto__":["a"]}}' }),
      400,
      'validation_failed',
    ],
  ];
  for (const [name, run, status, code] of cases) {
    it(`answers ${name} with ${status} ${code}`, async () => {
      const res = await run();
      expect(res.status).toBe(status);
      expect((res.body as ErrBody).error.code).toBe(code);
      expect(ERROR_CODES).toContain((res.body as ErrBody).error.code);
      expect(typeof (res.body as ErrBody).error.message).toBe('string');
    });
  }

  it('moves a card between stages named like Object.prototype members (toString, hasOwnProperty, valueOf)', async () => {
    const stages = ['toString', 'hasOwnProperty', 'valueOf'];
    const wf = await api<{ data: { id: string } }>(node.url, 'POST', '/api/workflows', {
      token: admin,
      body: { name: 'Proto', stages, transitions: { toString: ['hasOwnProperty'] } },
    });
    expect(wf.status).toBe(201);
    const proc = await api<{ data: { id: string } }>(node.url, 'POST', '/api/processes', {
      token: admin,
      body: { workflowId: wf.body.data.id, title: 'p' },
    });
    const move = (to: string) => api(node.url, 'POST', `/api/processes/${proc.body.data.id}/transition`, { token: admin, body: { to } });
    expect((await move('hasOwnProperty')).status).toBe(200);
    // No own key hasOwnProperty in transitions: not allowed (it used to be a TypeError and a 500).
    const refused = await move('valueOf');
    expect(refused.status).toBe(422);
    expect((refused.body as ErrBody).error.code).toBe('invalid_transition');
  });

  it("refuses a transition whose data would take the process's data past MAX_PAYLOAD_BYTES, and keeps the process as it was", async () => {
    const board = await createBoard(node.url, admin);
    const card = await createProcess(node.url, admin, board.id, 'Growing');
    // 2 KiB a request here: each of these fits, and each adds 1,500 bytes to the card.
    const move = (to: string, key: string) =>
      api<{ data: { process: { version: number; data: Record<string, unknown> } } } | ErrBody>(
        node.url,
        'POST',
        `/api/processes/${card.id}/transition`,
        { token: admin, body: { to, data: { [key]: 'g'.repeat(1_500) } } },
      );
    const first = await move('doing', 'a');
    expect(first.status).toBe(200);
    const second = await move('todo', 'b');
    expect(second.status).toBe(413);
    expect((second.body as ErrBody).error.code).toBe('payload_too_large');
    // Replacing a key keeps it within: still allowed.
    expect((await move('todo', 'a')).status).toBe(200);
    const now = await api<{ data: { version: number; stage: string; data: Record<string, unknown> } }>(
      node.url,
      'GET',
      `/api/processes/${card.id}`,
      { token: admin },
    );
    expect(now.body.data).toMatchObject({ version: 3, stage: 'todo' });
    expect(Object.keys(now.body.data.data)).toEqual(['a']);
  });

  it('never pollutes Object.prototype and keeps serving', async () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await api(node.url, 'GET', '/health')).status).toBe(200);
  });
});

describe('bad input over the socket gets an ack with an error code', () => {
  it('answers an unknown event with unknown_event', async () => {
    const ack = await new Promise((resolve) => (socket.emit as (...a: unknown[]) => void)('drop:tables', {}, resolve));
    expect(ack).toMatchObject({ error: { code: 'unknown_event' } });
  });

  it('answers wrong payload types with validation_failed', async () => {
    expect(await request(socket, 'subscribe', { room: 42 } as never)).toMatchObject({ error: { code: 'validation_failed' } });
    expect(await request(socket, 'process:transition', 'nope' as never)).toMatchObject({ error: { code: 'validation_failed' } });
  });

  it('answers unknown and foreign rooms and ids with typed errors', async () => {
    expect(await request(socket, 'subscribe', { room: 't:globex:tenant' })).toMatchObject({ error: { code: 'invalid_room' } });
    expect(await request(socket, 'subscribe', { room: 'process:missing' })).toMatchObject({ error: { code: 'not_found' } });
    expect(await request(socket, 'process:transition', { processId: 'missing', to: 'x' })).toMatchObject({ error: { code: 'not_found' } });
    expect(await request(socket, 'presence:update', { room: 'tenant', state: { status: 'viewing' } })).toMatchObject({
      error: { code: 'invalid_room' },
    });
  });

  it('answers a message over MAX_PAYLOAD_BYTES with payload_too_large and stays connected', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    const ack = await request(socket, 'process:transition', { processId: proc.id, to: 'doing', data: { blob: 'x'.repeat(4000) } });
    expect(ack).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(socket.connected).toBe(true);
    const after = await api<{ data: { version: number } }>(node.url, 'GET', `/api/processes/${proc.id}`, { token: admin });
    expect(after.body.data.version).toBe(proc.version);
  });

  it('refuses __proto__ keys in socket payloads', async () => {
    const payload = JSON.parse('{"room":"tenant","state":{"__proto__":{"x":1}}}');
    await request(socket, 'subscribe', { room: 'tenant' });
    expect(await request(socket, 'presence:update', payload)).toMatchObject({ error: { code: 'validation_failed' } });
  });
});

describe('static files', () => {
  it('answers a missing asset and a path outside the bundle with a typed 404', async () => {
    for (const path of ['/assets/nope.js', '/assets/..%2F..%2Fpackage.json']) {
      const res = await api(node.url, 'GET', path);
      expect(res.status, path).toBe(404);
      expect((res.body as ErrBody).error.code, path).toBe('not_found');
    }
  });
});
