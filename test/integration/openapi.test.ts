import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { buildWebIfStale } from '../../scripts/build-web.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import { createApp, type FluxoNode } from '../../server/app.js';
import { loadConfig } from '../../server/config/index.js';
import { openApiPath, type RouteDoc, routeKey } from '../../server/http/openapi.js';
import { ROUTE_DOCS } from '../../server/http/openapi-routes.js';
import type {
  CreateProcessRequest,
  CreateWorkflowRequest,
  EventsRequest,
  ListProcessesRequest,
  Process,
  TransitionBody,
  Workflow,
} from '../../shared/protocol.js';
import type {
  createProcessSchema,
  createWorkflowSchema,
  eventsQuery,
  listProcessesQuery,
  transitionBodySchema,
} from '../../shared/schemas.js';
import { DEV_JWT_SECRET } from '../harness/node.js';

/**
 * /openapi.json against the node that serves it: every route the router has is documented and every
 * documented route exists; each route is called with good, unauthenticated, malformed, forbidden,
 * conflicting and not-found requests, and every (route, status) that comes back must be in the
 * document, with a body its schema accepts.
 */

// The SDK's request types (shared/protocol.ts) and the schemas the server checks requests with:
// the same fields, each side's values accepted by the other. (Compile-time: tsc fails here.)
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Agrees<T, S extends z.ZodType> = Same<keyof T, keyof z.input<S>> extends true
  ? [T] extends [z.input<S>]
    ? [z.output<S>] extends [T]
      ? true
      : false
    : false
  : false;
const requestTypesAgree: [
  Agrees<CreateWorkflowRequest, typeof createWorkflowSchema>,
  Agrees<CreateProcessRequest, typeof createProcessSchema>,
  Agrees<TransitionBody, typeof transitionBodySchema>,
  Agrees<EventsRequest, typeof eventsQuery>,
  Same<keyof ListProcessesRequest, keyof z.input<typeof listProcessesQuery>>,
] = [true, true, true, true, true];
void requestTypesAgree;

const PUBLISH_KEY = 'publish-key-for-the-openapi-test';
const OPERATOR_KEY = 'operator-key-for-the-openapi-test-0123456789';
const MAX_PAYLOAD_BYTES = 4096;
const TENANT = 'oa';

let node: FluxoNode;
let doc: { paths: Record<string, Record<string, Operation>>; components: Record<string, unknown> };
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
const validators = new Map<string, ValidateFunction>();

interface Operation {
  'x-undocumented'?: boolean;
  responses: Record<string, { content?: Record<string, { schema?: object }> }>;
}

interface Probe {
  /** What the probe tries, for the failure message. */
  what: string;
  method: string;
  /** The route's pattern (what is documented). */
  pattern: string;
  /** The path sent; the pattern when absent. */
  path?: string;
  query?: string;
  bearer?: string;
  cookie?: string;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  expect: number;
}

/** Every (operation, status) answered, and the route keys answered with a 2xx. */
const answered: { key: string; status: number }[] = [];

let admin: string;
let otherAdmin: string;
let editor: string;
let viewer: string;
let wf: Workflow;
let card: Process;

beforeAll(async () => {
  await buildWebIfStale(); // the board's files, for the static routes' good answers
  node = await createApp(
    // The demo sign-in is on only with the built-in development secret: no JWT_SECRET here.
    loadConfig({
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      MIGRATE_ON_START: 'true',
      SHUTDOWN_GRACE_MS: '2000',
      DEV_LOGIN: 'true',
      PUBLISH_API_KEY: PUBLISH_KEY,
      OPERATOR_API_KEY: OPERATOR_KEY,
      MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD_BYTES),
      // Room for every probe; `process:transition` is small so that one user can be refused (429).
      RATE_LIMITS: 'auth=100000/60,http:read=100000/1,http:write=100000/1,process:transition=20/60',
    }),
  );
  await node.listen();
  const mint = (sub: string, role: 'admin' | 'editor' | 'viewer') => token({ sub, tid: TENANT, role, secret: DEV_JWT_SECRET });
  [admin, editor, viewer] = await Promise.all([mint('ada', 'admin'), mint('eve', 'editor'), mint('vic', 'viewer')]);
  otherAdmin = await token({ sub: 'oz', tid: 'elsewhere', role: 'admin', secret: DEV_JWT_SECRET });
  wf = await createBoard(node.url, admin);
  card = await createProcess(node.url, editor, wf.id, 'Probe card');
  const res = await fetch(`${node.url}/openapi.json`);
  expect(res.status).toBe(200);
  doc = await res.json();
});
afterAll(() => node?.close());

function validatorFor(path: string, method: string, status: number): ValidateFunction | null {
  const id = `${method} ${path} ${status}`;
  const schema = doc.paths[path]?.[method]?.responses[String(status)]?.content?.['application/json']?.schema;
  if (!schema) return null;
  let v = validators.get(id);
  if (!v) {
    // The components ride along, so the document's `#/components/schemas/…` refs resolve.
    v = ajv.compile({ ...schema, components: doc.components });
    validators.set(id, v);
  }
  return v;
}

/** Sends a probe; checks its status, that the status is documented for its route, and its body against the documented schema. */
async function send(p: Probe): Promise<void> {
  const headers: Record<string, string> = { ...(p.headers ?? {}) };
  if (p.bearer) headers.authorization = `Bearer ${p.bearer}`;
  if (p.cookie) headers.cookie = `fluxo_session=${p.cookie}`;
  const body = p.raw ?? (p.body === undefined ? undefined : JSON.stringify(p.body));
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(`${node.url}${p.path ?? p.pattern}${p.query ? `?${p.query}` : ''}`, { method: p.method, headers, body });
  const text = await res.text();
  const label = `${p.method} ${p.pattern} — ${p.what}: ${res.status} ${text.slice(0, 300)}`;
  expect(res.status, label).toBe(p.expect);

  const path = openApiPath(p.pattern);
  const method = p.method.toLowerCase();
  const documented = doc.paths[path]?.[method]?.responses ?? {};
  expect(Object.keys(documented), `${label}: status ${res.status} is not documented`).toContain(String(res.status));
  answered.push({ key: routeKey(p.method, p.pattern), status: res.status });
  const media = Object.keys(documented[String(res.status)]?.content ?? {});
  const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  if (media.length === 0) {
    expect(text, `${label}: an undocumented body`).toBe('');
    return;
  }
  expect(
    media.map((m) => m.split(';')[0]!.trim()),
    `${label}: Content-Type ${type}`,
  ).toContain(type);
  const validate = type === 'application/json' ? validatorFor(path, method, res.status) : null;
  if (validate && !validate(JSON.parse(text)))
    expect.fail(`${label}: the body does not match the document: ${ajv.errorsText(validate.errors)}`);
}

const nested = (depth: number): unknown => (depth === 0 ? 1 : { a: nested(depth - 1) });

/** Probes any route gets from its RouteDoc: without credentials, with a bad token, and bodies that are not what it takes. */
function genericProbes(method: string, pattern: string, doc: RouteDoc, path: string, good: Partial<Probe>): Probe[] {
  const probes: Probe[] = [];
  const base = { method, pattern, path };
  if (doc.security.length > 0 && !doc.anonymous) {
    probes.push({ ...base, what: 'no credentials', body: good.body, expect: 401 });
    probes.push({ ...base, what: 'a malformed token', bearer: 'not.a.token', body: good.body, expect: 401 });
  }
  if (doc.errors.includes('origin_not_allowed')) {
    probes.push({
      ...base,
      what: 'the session cookie from a page of another site',
      cookie: editor,
      headers: { 'sec-fetch-site': 'cross-site' },
      body: good.body ?? {},
      expect: 403,
    });
  }
  if (doc.body) {
    const cred = { bearer: good.bearer, cookie: good.cookie, headers: good.headers };
    probes.push(
      { ...base, ...cred, what: 'a body that is not JSON', raw: 'x', headers: { 'content-type': 'text/plain' }, expect: 415 },
      { ...base, ...cred, what: 'broken JSON', raw: '{"a":', expect: 400 },
      { ...base, ...cred, what: 'a body that misses the schema', body: { unexpected: true }, expect: 400 },
      { ...base, ...cred, what: 'a body nested too deep', body: nested(40), expect: 400 },
      { ...base, ...cred, what: 'a body over MAX_PAYLOAD_BYTES', raw: JSON.stringify({ pad: 'x'.repeat(MAX_PAYLOAD_BYTES) }), expect: 413 },
    );
  }
  return probes;
}

/** The requests each route must answer well (first probe: the good one, whose credentials the generic probes reuse), and its own refusals. */
function routeProbes(): Record<string, Omit<Probe, 'method' | 'pattern'>[]> {
  const move = (to: string, extra: Record<string, unknown> = {}) => ({ to, ...extra });
  return {
    'GET /health': [{ what: 'alive', expect: 200 }],
    'GET /ready': [{ what: 'ready', expect: 200 }],
    'GET /metrics': [{ what: 'metrics', expect: 200 }],
    'GET /openapi.json': [{ what: 'the document', expect: 200 }],
    'POST /auth/session': [
      { what: 'a good token', body: { token: editor }, expect: 200 },
      { what: 'a forged token', body: { token: `${editor.slice(0, -4)}AAAA` }, expect: 401 },
    ],
    'GET /auth/session': [
      { what: 'signed in', bearer: editor, expect: 200 },
      { what: 'signed out', expect: 200 },
      { what: 'a bad token', bearer: 'not.a.token', expect: 200 },
    ],
    'POST /auth/logout': [
      { what: 'a token to revoke', bearer: '', expect: 200 },
      { what: 'no credentials', expect: 200 },
    ],
    'GET /auth/dev-users': [
      { what: 'the demo users', expect: 200 },
      { what: 'a tenant that is not a tenant id', query: 'tenant=no%20such%20tenant', expect: 400 },
    ],
    'POST /auth/dev-login': [
      { what: 'a demo user', body: { userId: 'ada', tenant: TENANT }, expect: 200 },
      { what: 'no such demo user', body: { userId: 'nobody' }, expect: 404 },
    ],
    'GET /api/me': [{ what: 'who', bearer: viewer, expect: 200 }],
    'GET /api/workflows': [{ what: 'the list', bearer: viewer, expect: 200 }],
    'POST /api/workflows': [
      { what: 'a workflow', bearer: admin, body: { name: 'Doc', stages: ['a', 'b'], transitions: { a: ['b'] } }, expect: 201 },
      { what: 'as an editor', bearer: editor, body: { name: 'Doc', stages: ['a'], transitions: {} }, expect: 403 },
      {
        what: 'a transition to an unknown stage',
        bearer: admin,
        body: { name: 'Doc', stages: ['a'], transitions: { a: ['z'] } },
        expect: 400,
      },
    ],
    'GET /api/workflows/:id': [
      { what: 'one', path: `/api/workflows/${wf.id}`, cookie: viewer, expect: 200 },
      { what: 'an unknown id', path: '/api/workflows/no-such-workflow', bearer: viewer, expect: 404 },
      { what: 'an id with U+0000', path: '/api/workflows/bad%00id', bearer: viewer, expect: 400 },
    ],
    'GET /api/processes': [
      { what: 'a page with its total', query: `workflowId=${wf.id}&total=true&limit=1`, bearer: viewer, expect: 200 },
      { what: 'a limit out of range', query: 'limit=0', bearer: viewer, expect: 400 },
      { what: 'a cursor that is not one', query: 'cursor=bm90LWEtY3Vyc29y', bearer: viewer, expect: 400 },
    ],
    'POST /api/processes': [
      { what: 'a card', bearer: editor, body: { workflowId: wf.id, title: 'Another' }, expect: 201 },
      { what: 'as a viewer', bearer: viewer, body: { workflowId: wf.id, title: 'No' }, expect: 403 },
      { what: 'in an unknown workflow', bearer: editor, body: { workflowId: 'no-such-workflow', title: 'No' }, expect: 404 },
    ],
    'GET /api/processes/:id': [
      { what: 'one', path: `/api/processes/${card.id}`, bearer: viewer, expect: 200 },
      { what: 'an unknown id', path: '/api/processes/no-such-process', bearer: viewer, expect: 404 },
    ],
    'POST /api/processes/:id/transition': [
      {
        what: 'a move',
        path: `/api/processes/${card.id}/transition`,
        bearer: editor,
        body: move('doing', { expectedVersion: 1, requestId: 'r1' }),
        expect: 200,
      },
      {
        what: 'the same requestId again',
        path: `/api/processes/${card.id}/transition`,
        bearer: editor,
        body: move('doing', { requestId: 'r1' }),
        expect: 200,
      },
      {
        what: 'a stale version',
        path: `/api/processes/${card.id}/transition`,
        bearer: editor,
        body: move('done', { expectedVersion: 1 }),
        expect: 409,
      },
      {
        what: 'a move the workflow forbids',
        path: `/api/processes/${card.id}/transition`,
        bearer: editor,
        body: move('nowhere'),
        expect: 422,
      },
      { what: 'as a viewer', path: `/api/processes/${card.id}/transition`, bearer: viewer, body: move('done'), expect: 403 },
      { what: 'an unknown process', path: '/api/processes/no-such-process/transition', bearer: editor, body: move('done'), expect: 404 },
    ],
    'GET /api/events': [
      { what: "a process's history", query: `room=process:${card.id}`, bearer: viewer, expect: 200 },
      { what: 'recent history (before)', query: `room=process:${card.id}&before=1000000&limit=1`, bearer: viewer, expect: 200 },
      { what: 'no room', bearer: viewer, expect: 400 },
      { what: 'a room that is not one', query: 'room=kitchen', bearer: viewer, expect: 400 },
      { what: "another user's room", query: 'room=user:someone-else', bearer: viewer, expect: 403 },
      { what: 'the room of an unknown process', query: 'room=process:no-such-process', bearer: viewer, expect: 404 },
    ],
    'POST /api/publish': [
      { what: 'one event', bearer: PUBLISH_KEY, body: { tenant: TENANT, room: 'tenant', type: 'note', data: { n: 1 } }, expect: 201 },
      {
        what: 'a batch',
        bearer: PUBLISH_KEY,
        body: {
          events: [
            { tenant: TENANT, room: `workflow:${wf.id}`, type: 'note' },
            { tenant: TENANT, room: 'tenant', type: 'note' },
          ],
        },
        expect: 201,
      },
      { what: 'a wrong key', bearer: 'not-the-key', body: { tenant: TENANT, room: 'tenant', type: 'note' }, expect: 401 },
      { what: 'a room that is not one', bearer: PUBLISH_KEY, body: { tenant: TENANT, room: 'kitchen', type: 'note' }, expect: 400 },
    ],
    'GET /': [{ what: 'the board', expect: 200 }],
    'GET /assets/:file': [
      { what: 'the bundle', path: '/assets/app.js', expect: 200 },
      { what: 'a file the board does not have', path: '/assets/nothing.js', expect: 404 },
    ],
    'GET /favicon.svg': [{ what: 'the icon', expect: 200 }],
    'GET /api/admin/nodes': [
      { what: 'the operator', bearer: OPERATOR_KEY, expect: 200 },
      { what: "a tenant's admin", bearer: admin, expect: 200 },
      { what: 'an editor', bearer: editor, expect: 403 },
      { what: 'a wrong key', bearer: 'not-the-operator-key', expect: 401 },
    ],
    'GET /api/admin/tenants/:tenant/rooms': [
      { what: 'the rooms', path: `/api/admin/tenants/${TENANT}/rooms`, query: 'limit=10', bearer: OPERATOR_KEY, expect: 200 },
      { what: 'a limit out of range', path: `/api/admin/tenants/${TENANT}/rooms`, query: 'limit=0', bearer: OPERATOR_KEY, expect: 400 },
      { what: "another tenant's admin", path: `/api/admin/tenants/${TENANT}/rooms`, bearer: otherAdmin, expect: 403 },
      { what: 'a tenant id that is not one', path: '/api/admin/tenants/no%20such/rooms', bearer: OPERATOR_KEY, expect: 400 },
    ],
    'GET /api/admin/tenants/:tenant/rooms/:room/presence': [
      {
        what: 'a room',
        path: `/api/admin/tenants/${TENANT}/rooms/${encodeURIComponent(`workflow:${wf.id}`)}/presence`,
        bearer: admin,
        expect: 200,
      },
      { what: 'a room that is not one', path: `/api/admin/tenants/${TENANT}/rooms/kitchen/presence`, bearer: admin, expect: 400 },
    ],
    'GET /api/admin/tenants/:tenant/users/:userId/connections': [
      { what: 'a user', path: `/api/admin/tenants/${TENANT}/users/eve/connections`, bearer: OPERATOR_KEY, expect: 200 },
    ],
    'POST /api/admin/tenants/:tenant/users/:userId/disconnect': [
      {
        what: 'a user, asked to come back',
        path: `/api/admin/tenants/${TENANT}/users/nobody/disconnect`,
        bearer: OPERATOR_KEY,
        body: { reconnect: true },
        expect: 200,
      },
      { what: 'no body', path: `/api/admin/tenants/${TENANT}/users/nobody/disconnect`, bearer: admin, expect: 200 },
    ],
    'POST /api/admin/tenants/:tenant/users/:userId/unsubscribe': [
      {
        what: 'a user from a room',
        path: `/api/admin/tenants/${TENANT}/users/nobody/unsubscribe`,
        bearer: OPERATOR_KEY,
        body: { room: 'tenant' },
        expect: 200,
      },
      {
        what: 'a room that is not one',
        path: `/api/admin/tenants/${TENANT}/users/nobody/unsubscribe`,
        bearer: OPERATOR_KEY,
        body: { room: 'kitchen' },
        expect: 400,
      },
    ],
  };
}

describe('OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc).toMatchObject({ openapi: '3.1.0', info: { title: 'Fluxo' } });
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('documents every route the node serves (a route without a RouteDoc is listed here)', () => {
    const undocumented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => op['x-undocumented'])
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    expect(undocumented).toEqual([]);
  });

  it("keeps the schemas' field descriptions (`.describe()`), of shared components too", () => {
    const schemas = doc.components.schemas as Record<string, { properties?: Record<string, { description?: string }> }>;
    const events = doc.paths['/api/events']?.get?.responses?.['200'] as {
      content: { 'application/json': { schema: { properties: Record<string, { description?: string }> } } };
    };
    expect(events.content['application/json'].schema.properties.next?.description).toMatch(/next page/);
    const described = Object.values(schemas).flatMap((s) => Object.values(s.properties ?? {}).filter((p) => p.description));
    expect(described.length).toBeGreaterThan(10);
  });

  it('describes no route the node does not serve', () => {
    const served = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)));
    const missing = Object.keys(ROUTE_DOCS).filter((key) => {
      const [method, pattern] = key.split(' ') as [string, string];
      return !served.has(`${method} ${openApiPath(pattern)}`);
    });
    expect(missing).toEqual([]);
  });
});

describe('every answer is documented, with its body', () => {
  const docs = Object.entries(ROUTE_DOCS);

  it.each(docs.map(([key]) => key))('%s', async (key) => {
    const [method, pattern] = key.split(' ') as [string, string];
    const routeDoc = ROUTE_DOCS[key]!;
    const own = routeProbes()[key];
    expect(own, `no probes for ${key}: add its good request to routeProbes()`).toBeDefined();
    const probes = own!.map((p) => ({ ...p, method, pattern }));
    if (key === 'POST /auth/logout') probes[0]!.bearer = await token({ sub: 'leaving', tid: TENANT, secret: DEV_JWT_SECRET });
    const good = probes[0]!;
    for (const p of [...probes, ...genericProbes(method, pattern, routeDoc, good.path ?? pattern, good)]) await send(p);
  });

  it('answers 429 rate_limited, as documented, once a budget is spent', async () => {
    const flood = await token({ sub: 'flood', tid: TENANT, role: 'editor', secret: DEV_JWT_SECRET });
    const pattern = '/api/processes/:id/transition';
    let status = 0;
    for (let i = 0; i < 25 && status !== 429; i++) {
      const res = await fetch(`${node.url}/api/processes/${card.id}/transition`, {
        method: 'POST',
        headers: { authorization: `Bearer ${flood}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: 'nowhere' }),
      });
      status = res.status;
      await res.arrayBuffer();
    }
    expect(status).toBe(429);
    await send({
      what: 'over the transition budget',
      method: 'POST',
      pattern,
      path: `/api/processes/${card.id}/transition`,
      bearer: flood,
      body: { to: 'done' },
      expect: 429,
    });
  });

  it('answers OPTIONS on every path with 204, as documented', async () => {
    for (const path of Object.keys(doc.paths)) {
      const concrete = path.replace(/\{[^}]+\}/g, 'x');
      const res = await fetch(`${node.url}${concrete}`, { method: 'OPTIONS' });
      expect(res.status, path).toBe(204);
      expect(Object.keys(doc.paths[path]!.options?.responses ?? {}), path).toContain('204');
    }
  });

  it('got a success from every documented route', () => {
    const succeeded = new Set(answered.filter((a) => a.status < 300).map((a) => a.key));
    expect(Object.keys(ROUTE_DOCS).filter((key) => !succeeded.has(key))).toEqual([]);
  });
});
