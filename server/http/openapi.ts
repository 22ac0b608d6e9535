import { z } from 'zod';
import { ERRORS, type ErrorCode } from '../../shared/errors.js';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { jsonObject } from '../../shared/schemas.js';
import { components, errorBodySchema } from './openapi-schemas.js';

/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the zod schemas (shared/schemas.ts for
 * requests, openapi-schemas.ts for answers) and one RouteDoc per route (openapi-routes.ts). It is
 * built from the router's own list of routes, so it names every route the node serves: one without
 * a RouteDoc still appears, marked `x-undocumented`, and test/integration/openapi.test.ts fails
 * naming it.
 */

type JsonSchema = Record<string, unknown>;

/** Credentials a route accepts (any one of them): the security schemes of the document. */
export type Credential = 'bearer' | 'cookie' | 'publishKey' | 'operatorKey';

export interface Answer {
  description: string;
  /** The JSON body. */
  schema?: z.ZodType;
  /** Media types of a body that is not JSON (the schema is then any content). */
  media?: string[];
  /** Response headers worth knowing: name → description. */
  headers?: Record<string, string>;
}

export interface RouteDoc {
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** Any one of these credentials; empty: none needed. */
  security: Credential[];
  /** The credentials are optional (the route answers without them too). */
  anonymous?: boolean;
  /** Path parameters (`:name` in the pattern); each is a plain string when not given. */
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** The JSON request body. */
  body?: z.ZodType;
  /** The body may be left out. */
  bodyOptional?: boolean;
  /** Successful answers by status. */
  ok: Record<number, Answer>;
  /**
   * Catalog codes the route may answer, grouped by their status in the document. Added to every
   * route without being listed: `internal`; `not_ready` on /api writes (a draining node refuses
   * them, app.ts); `rate_limited` on /auth routes (each costs the client IP a point of `auth`, app.ts).
   */
  errors: ErrorCode[];
}

/** RouteDocs keyed by `METHOD pattern`, as the router has them (`GET /api/processes/:id`). */
export type RouteDocs = Record<string, RouteDoc>;

export const routeKey = (method: string, pattern: string): string => `${method} ${pattern}`;

/** Refusals of a JSON body (respond.ts readBody, validate): shared by every module's route docs. */
export const BODY_REFUSALS: ErrorCode[] = [
  'unsupported_media_type',
  'invalid_json',
  'validation_failed',
  'payload_too_deep',
  'payload_too_large',
];

/** Refusals of a token (verifier), and of the budgets an authenticated route spends (api.ts `authed`, admin.ts `route`). */
export const TOKEN_REFUSALS: ErrorCode[] = [
  'unauthorized',
  'token_invalid',
  'token_expired',
  'token_revoked',
  'auth_unavailable',
  'store_unavailable',
  'rate_limited',
];

/** `/api/processes/:id` → `/api/processes/{id}`. */
export const openApiPath = (pattern: string): string => pattern.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

const SECURITY_SCHEMES: Record<Credential, JsonSchema> = {
  bearer: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A JWT of your identity provider (claims `sub`, `tid`, `role`).',
  },
  cookie: {
    type: 'apiKey',
    in: 'cookie',
    name: 'fluxo_session',
    description:
      'The httpOnly session cookie set by `POST /auth/session` (its name is AUTH_COOKIE_NAME). Writes with it must come from the node’s own page or an ALLOWED_ORIGINS page (else 403 `origin_not_allowed`).',
  },
  publishKey: { type: 'http', scheme: 'bearer', description: 'PUBLISH_API_KEY, for backends that publish events.' },
  operatorKey: { type: 'http', scheme: 'bearer', description: 'OPERATOR_API_KEY: the operator API for every tenant.' },
};

/** Codes answered on routes without being listed in their RouteDoc (see RouteDoc.errors). */
function implicitErrors(method: string, pattern: string): ErrorCode[] {
  const codes: ErrorCode[] = ['internal'];
  if (pattern.startsWith('/api/') && method !== 'GET') codes.push('not_ready');
  if (pattern.startsWith('/auth/')) codes.push('rate_limited');
  return codes;
}

/** zod → JSON Schema, with the schemas of `components` moved out to `#/components/schemas`. */
class SchemaSet {
  readonly defs: Record<string, JsonSchema> = {};

  convert(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
    const json = z.toJSONSchema(schema, {
      metadata: components,
      io,
      unrepresentable: 'any',
      // A request's JSON object is checked (depth, keys) before it is parsed: its input is "unknown" to zod.
      override: (ctx) => {
        if (ctx.zodSchema === jsonObject) ctx.jsonSchema.type = 'object';
        // `metadata` replaces the global registry, where `.describe()` keeps its text: read it there.
        const description = z.globalRegistry.get(ctx.zodSchema)?.description;
        if (description !== undefined && ctx.jsonSchema.description === undefined) ctx.jsonSchema.description = description;
      },
    }) as JsonSchema;
    const { $schema: _, $defs, ...rest } = json;
    for (const [id, def] of Object.entries(($defs ?? {}) as Record<string, JsonSchema>)) {
      const moved = toComponents(def);
      const known = this.defs[id];
      if (known && JSON.stringify(known) !== JSON.stringify(moved)) throw new Error(`components.schemas.${id} differs between its uses`);
      this.defs[id] = moved;
    }
    return toComponents(rest);
  }
}

function toComponents(schema: JsonSchema): JsonSchema {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/$defs/', '"#/components/schemas/'));
}

/** Query or path parameters from an object schema, one parameter per property. */
function parameters(set: SchemaSet, where: 'query' | 'path', schema: z.ZodObject | undefined, names: string[] = []): JsonSchema[] {
  const json = schema ? set.convert(schema, 'input') : { properties: {}, required: [] };
  const props = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  for (const name of names) props[name] ??= { type: 'string' };
  return Object.entries(props).map(([name, prop]) => {
    const { description, ...propSchema } = prop;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      schema: propSchema,
      ...(typeof description === 'string' ? { description } : {}),
    };
  });
}

function errorAnswers(codes: ErrorCode[]): Record<string, JsonSchema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, JsonSchema> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    out[String(status)] = {
      description: list.map((c) => `\`${c}\`: ${ERRORS[c].message}`).join(' '),
      ...(list.includes('rate_limited')
        ? { headers: { 'Retry-After': { description: 'Seconds to wait (also `retryAfterMs` in the body).', schema: { type: 'integer' } } } }
        : {}),
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['error'],
            additionalProperties: false,
            properties: { error: { allOf: [{ $ref: '#/components/schemas/ErrorBody' }, { properties: { code: { enum: list } } }] } },
          },
        },
      },
    };
  }
  return out;
}

function answer(set: SchemaSet, a: Answer): JsonSchema {
  const content: Record<string, JsonSchema> = {};
  if (a.schema) content['application/json'] = { schema: set.convert(a.schema, 'output') };
  for (const media of a.media ?? []) content[media] = { schema: {} };
  const headers = Object.fromEntries(
    Object.entries(a.headers ?? {}).map(([name, description]) => [name, { description, schema: { type: 'string' } }]),
  );
  return {
    description: a.description,
    ...(Object.keys(headers).length ? { headers } : {}),
    ...(Object.keys(content).length ? { content } : {}),
  };
}

function operation(set: SchemaSet, method: string, pattern: string, doc: RouteDoc | undefined): JsonSchema {
  const names = [...pattern.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
  const params = parameters(set, 'path', doc?.params, names);
  if (!doc) {
    return {
      operationId: `${method.toLowerCase()}${pattern.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: 'Not documented yet',
      'x-undocumented': true,
      ...(params.length ? { parameters: params } : {}),
      responses: { default: { description: 'Not documented yet.' } },
    };
  }
  const query = parameters(set, 'query', doc.query);
  const ok = Object.fromEntries(Object.entries(doc.ok).map(([status, a]) => [status, answer(set, a)]));
  return {
    operationId: doc.operationId,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag],
    security: [...doc.security.map((c) => ({ [c]: [] })), ...(doc.anonymous ? [{}] : [])],
    ...([...params, ...query].length ? { parameters: [...params, ...query] } : {}),
    ...(doc.body
      ? { requestBody: { required: !doc.bodyOptional, content: { 'application/json': { schema: set.convert(doc.body, 'input') } } } }
      : {}),
    responses: { ...ok, ...errorAnswers([...doc.errors, ...implicitErrors(method, pattern)]) },
  };
}

/** The answer every path gives to OPTIONS (server/http/cors.ts), before any route runs. */
const OPTIONS_OPERATION = {
  summary: 'The methods of this path; a CORS preflight',
  description:
    'Answered for every route before any credential or budget is checked. A preflight from an ALLOWED_ORIGINS page also gets the Access-Control-Allow-* headers.',
  tags: ['cors'],
  security: [],
  responses: {
    '204': {
      description: 'The methods this path answers.',
      headers: { Allow: { description: 'e.g. `GET, HEAD, OPTIONS`', schema: { type: 'string' } } },
    },
  },
};

const DESCRIPTION = `The HTTP API of Fluxo. Every answer is JSON unless said otherwise: \`{ "data": … }\` on success, \`{ "error": { "code", "message", … } }\` with a code of the error catalog otherwise (the same codes as the Socket.IO acks; \`retryable\` in the catalog says whether to retry).

Beside what each operation lists: a GET route also answers HEAD; a path no route has answers 404 \`not_found\`, a method a path does not have 405 \`method_not_allowed\`; any request whose body exceeds MAX_PAYLOAD_BYTES gets 413 \`payload_too_large\`.

The real-time protocol (Socket.IO events, payloads, acks) is not HTTP and not described here: see shared/protocol.ts. Its version, which \`hello.protocol\` carries, is \`info.version\`.`;

export interface RouteRef {
  method: string;
  pattern: string;
}

/** The OpenAPI document of `routes` (the router's), described by `docs`. */
export function openApiDocument(routes: RouteRef[], docs: RouteDocs): Record<string, unknown> {
  const set = new SchemaSet();
  // Every error answer refers to ErrorBody: it is in the components whatever the routes use.
  set.convert(errorBodySchema, 'output');
  const paths: Record<string, Record<string, unknown>> = {};
  const tags = new Set<string>();
  for (const { method, pattern } of routes) {
    const doc = docs[routeKey(method, pattern)];
    if (doc) tags.add(doc.tag);
    const key = openApiPath(pattern);
    paths[key] = { ...paths[key], [method.toLowerCase()]: operation(set, method, pattern, doc) };
  }
  for (const path of Object.values(paths)) path.options = OPTIONS_OPERATION;
  return {
    openapi: '3.1.0',
    info: {
      title: 'Fluxo',
      version: PROTOCOL_VERSION,
      description: DESCRIPTION,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    tags: [...tags, 'cors'].map((name) => ({ name })),
    paths,
    components: { schemas: sortKeys(set.defs), securitySchemes: SECURITY_SCHEMES },
  };
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}
