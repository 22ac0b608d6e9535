import { z } from 'zod';
import type { ErrorCode } from '../../shared/errors.js';
import { TENANT_ID } from '../../shared/rooms.js';
import * as schemas from '../../shared/schemas.js';
import { BODY_REFUSALS, type RouteDoc, type RouteDocs, TOKEN_REFUSALS } from './openapi.js';
import { ADMIN_ROUTE_DOCS } from './openapi-admin.js';
import { data, eventSchema, meSchema, processSchema, roleSchema, transitionResultSchema, workflowSchema } from './openapi-schemas.js';

/**
 * What each route of the node answers, keyed like the router (`METHOD pattern`): the document at
 * /openapi.json is generated from these. A route added to the router without an entry here is
 * served as `x-undocumented` and fails test/integration/openapi.test.ts, which names it; that test
 * also checks every status the routes answer, and every answer's body, against these entries.
 * A module with many routes may keep its entries in a file of its own, merged into ROUTE_DOCS
 * (the operator API's are in openapi-admin.ts).
 */

const BODY = BODY_REFUSALS;
const TOKEN = TOKEN_REFUSALS;
/** A write with the session cookie from a page of another origin. */
const COOKIE_WRITE: ErrorCode[] = ['origin_not_allowed'];
/** Reads and writes of the database. */
const STORE: ErrorCode[] = ['store_unavailable'];

const SESSION = ['bearer', 'cookie'] as const;
const idParam = z.object({ id: schemas.id });

/** `GET …/:id` of the signed-in API (api.ts `byId`): one `what` of the caller's tenant. */
const byId = (operationId: string, tag: string, what: string, schema: z.ZodType): RouteDoc => ({
  operationId,
  summary: `One ${what}`,
  tag,
  security: [...SESSION],
  params: idParam,
  ok: { 200: { description: `The ${what}.`, schema: data(schema) } },
  errors: [...TOKEN, ...STORE, 'validation_failed', 'payload_too_deep', 'not_found'],
});

// Mirrors dev-login.ts (its schemas are private to it); the coverage test sends it bodies of both kinds.
const devUsersQuery = z.object({ tenant: z.string().regex(TENANT_ID).default('acme') });
const devLoginBody = z.object({ userId: z.string().max(128), tenant: z.string().regex(TENANT_ID).default('acme') }).strict();

const processPage = z.object({
  data: z.array(processSchema),
  nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last one.'),
  total: z.number().int().min(0).optional().describe('With `total=true`: how many processes match the filters.'),
});
const eventPage = z.object({
  data: z.array(eventSchema),
  next: z
    .number()
    .int()
    .nullable()
    .describe(
      'Null on the last page; else the `after` of the next page (the `before` of the previous one, with `before`). A page holds at most `limit` events and about 1 MiB of their data.',
    ),
});
const sessionState = z.union([
  z.object({
    authenticated: z.literal(true),
    userId: z.string(),
    tenant: z.string(),
    role: roleSchema,
    name: z.string().nullable(),
    exp: z.number().int(),
    devLogin: z.literal(true).optional(),
  }),
  z.object({
    authenticated: z.literal(false),
    reason: z.enum(['unauthorized', 'token_invalid', 'token_expired', 'token_revoked']).optional(),
    devLogin: z.literal(true).optional().describe('The demo sign-in is on (DEV_LOGIN).'),
  }),
]);
const nodeStatus = (status: string) => z.object({ status: z.literal(status), node: z.string().describe('NODE_ID') });

const ROUTES: RouteDocs = {
  'GET /health': {
    operationId: 'health',
    summary: 'Liveness: the process answers',
    tag: 'operations',
    security: [],
    ok: { 200: { description: 'Alive.', schema: nodeStatus('ok') } },
    errors: [],
  },
  'GET /ready': {
    operationId: 'ready',
    summary: 'Readiness: database, Redis and token revocations answer, and the node is not draining',
    tag: 'operations',
    security: [],
    ok: { 200: { description: 'Ready for traffic.', schema: nodeStatus('ready') } },
    errors: ['not_ready'],
  },
  'GET /metrics': {
    operationId: 'metrics',
    summary: 'Prometheus metrics of this node',
    tag: 'operations',
    security: [],
    ok: { 200: { description: 'Prometheus text exposition format.', media: ['text/plain; version=0.0.4; charset=utf-8'] } },
    errors: [],
  },
  'GET /openapi.json': {
    operationId: 'openApi',
    summary: 'This document',
    tag: 'operations',
    security: [],
    ok: {
      200: { description: 'The OpenAPI 3.1 document of the routes this node serves.', schema: z.looseObject({ openapi: z.string() }) },
    },
    errors: [],
  },
  'POST /auth/session': {
    operationId: 'signIn',
    summary: 'Exchange a token for the httpOnly session cookie',
    tag: 'auth',
    security: [],
    body: schemas.sessionSchema,
    ok: { 200: { description: 'Signed in.', schema: data(meSchema), headers: { 'Set-Cookie': 'The session cookie.' } } },
    errors: [...BODY, ...TOKEN, ...COOKIE_WRITE],
  },
  'GET /auth/session': {
    operationId: 'session',
    summary: 'Who the credentials (cookie or Bearer) say you are; 200 also when signed out',
    tag: 'auth',
    security: [],
    ok: { 200: { description: 'Signed in or not, and why not.', schema: data(sessionState) } },
    errors: ['auth_unavailable', 'store_unavailable'],
  },
  'POST /auth/logout': {
    operationId: 'signOut',
    summary: 'Clear the cookie, revoke the token until it expires, disconnect its sockets',
    tag: 'auth',
    security: [...SESSION],
    anonymous: true,
    ok: {
      200: {
        description: '`revoked` is false when the credentials were already invalid (the cookie is cleared anyway).',
        schema: data(z.object({ revoked: z.boolean() })),
        headers: { 'Set-Cookie': 'Clears the session cookie.' },
      },
    },
    errors: [...COOKIE_WRITE, ...STORE, 'auth_unavailable'],
  },
  'GET /auth/dev-users': {
    operationId: 'devUsers',
    summary: 'The demo users (DEV_LOGIN only; 404 otherwise)',
    tag: 'auth',
    security: [],
    query: devUsersQuery,
    ok: {
      200: {
        description: 'The demo users of the tenant.',
        schema: data(z.object({ tenant: z.string(), users: z.array(z.object({ id: z.string(), name: z.string(), role: roleSchema })) })),
      },
    },
    errors: ['not_found', 'validation_failed', 'payload_too_deep'],
  },
  'POST /auth/dev-login': {
    operationId: 'devLogin',
    summary: 'Sign in as a demo user (DEV_LOGIN only; 404 otherwise)',
    tag: 'auth',
    security: [],
    body: devLoginBody,
    ok: {
      200: {
        description: 'A short-lived token, also set as the session cookie.',
        schema: data(
          z.object({
            token: z.string(),
            userId: z.string(),
            tenant: z.string(),
            role: roleSchema,
            name: z.string(),
            exp: z.number().int(),
          }),
        ),
        headers: { 'Set-Cookie': 'The session cookie.' },
      },
    },
    errors: [...BODY, ...COOKIE_WRITE, 'not_found'],
  },
  'GET /api/me': {
    operationId: 'me',
    summary: 'Who the credentials say you are',
    tag: 'auth',
    security: [...SESSION],
    ok: { 200: { description: 'The token’s identity.', schema: data(meSchema) } },
    errors: [...TOKEN],
  },
  'GET /api/workflows': {
    operationId: 'listWorkflows',
    summary: 'The workflows of your tenant',
    tag: 'workflows',
    security: [...SESSION],
    ok: { 200: { description: 'Every workflow.', schema: data(z.array(workflowSchema)) } },
    errors: [...TOKEN, ...STORE],
  },
  'POST /api/workflows': {
    operationId: 'createWorkflow',
    summary: 'Create a workflow (admin)',
    tag: 'workflows',
    security: [...SESSION],
    body: schemas.createWorkflowSchema,
    ok: { 201: { description: 'Created.', schema: data(workflowSchema) } },
    errors: [...BODY, ...TOKEN, ...COOKIE_WRITE, ...STORE, 'forbidden'],
  },
  'GET /api/workflows/:id': byId('getWorkflow', 'workflows', 'workflow', workflowSchema),
  'GET /api/processes': {
    operationId: 'listProcesses',
    summary: 'A page of processes, newest first',
    tag: 'processes',
    security: [...SESSION],
    query: schemas.listProcessesQuery,
    ok: { 200: { description: 'One page.', schema: processPage } },
    errors: [...TOKEN, ...STORE, 'validation_failed', 'payload_too_deep', 'bad_request'],
  },
  'POST /api/processes': {
    operationId: 'createProcess',
    summary: 'Create a process (editor); it starts in `stage`, else the workflow’s first stage',
    tag: 'processes',
    security: [...SESSION],
    body: schemas.createProcessSchema,
    ok: { 201: { description: 'Created; its `process.created` event is sent to its rooms.', schema: data(processSchema) } },
    errors: [...BODY, ...TOKEN, ...COOKIE_WRITE, ...STORE, 'forbidden', 'not_found'],
  },
  'GET /api/processes/:id': byId('getProcess', 'processes', 'process', processSchema),
  'POST /api/processes/:id/transition': {
    operationId: 'transition',
    summary: 'Move a process to another stage (editor)',
    description:
      'With `expectedVersion`, refused (409 `version_conflict`, `current` the process now) unless the process is at that version. A retry with the same `requestId` within a day gets the first result (`replayed: true`) and writes nothing.',
    tag: 'processes',
    security: [...SESSION],
    params: idParam,
    body: schemas.transitionBodySchema,
    ok: { 200: { description: 'Moved; its `process.transitioned` event is sent to its rooms.', schema: data(transitionResultSchema) } },
    errors: [
      ...BODY,
      ...TOKEN,
      ...COOKIE_WRITE,
      ...STORE,
      'forbidden',
      'not_found',
      'version_conflict',
      'request_in_progress',
      'invalid_transition',
    ],
  },
  'GET /api/events': {
    operationId: 'events',
    summary: 'The stored events of a room, in id order (replay, history)',
    tag: 'events',
    security: [...SESSION],
    query: schemas.eventsQuery,
    ok: { 200: { description: 'One page.', schema: eventPage } },
    errors: [...TOKEN, ...STORE, 'validation_failed', 'payload_too_deep', 'invalid_room', 'forbidden', 'not_found'],
  },
  'POST /api/publish': {
    operationId: 'publish',
    summary: 'Publish custom events from a backend (PUBLISH_API_KEY; 404 when unset)',
    description:
      'One event, or `{ events: [...] }` (up to 1,000, committed together, ids in the order given). With `requestId`, a retry (after a timeout, a 503 or a lost answer) gets the first answer back (`replayed: true`) and nothing is written or sent again; the id names the request, not its content, within each tenant the request publishes to, for a day.',
    tag: 'publish',
    security: ['publishKey'],
    body: z.union([schemas.publishSchema, schemas.publishBatchSchema]),
    ok: {
      201: {
        description: 'Committed and sent to their rooms (or, `replayed`, the answer of the first call with this `requestId`).',
        schema: z.object({
          data: z.union([eventSchema, z.array(eventSchema)]),
          replayed: z.boolean().describe("True when `requestId` had been seen: these are the first call's events, nothing was written."),
        }),
      },
    },
    errors: [...BODY, ...STORE, 'unauthorized', 'rate_limited', 'not_found', 'invalid_room', 'request_in_progress', 'conflict'],
  },
  'GET /': {
    operationId: 'board',
    summary: 'The live board (web/dist), or a short page until it is built',
    tag: 'board',
    security: [],
    ok: { 200: { description: 'The page.', media: ['text/html; charset=utf-8'] } },
    errors: [],
  },
  'GET /assets/:file': {
    operationId: 'asset',
    summary: 'A file of the built board',
    tag: 'board',
    security: [],
    ok: {
      200: {
        description: 'The file, typed by its extension.',
        media: [
          'text/javascript; charset=utf-8',
          'text/css; charset=utf-8',
          'application/json',
          'image/svg+xml',
          'image/png',
          'application/octet-stream',
        ],
      },
    },
    errors: ['not_found'],
  },
  'GET /favicon.svg': {
    operationId: 'favicon',
    summary: 'The board’s icon',
    tag: 'board',
    security: [],
    ok: { 200: { description: 'The icon.', media: ['image/svg+xml'] } },
    errors: ['not_found'],
  },
};

/** Every route's RouteDoc. */
export const ROUTE_DOCS: RouteDocs = { ...ROUTES, ...ADMIN_ROUTE_DOCS };
