import type { ErrorCode } from '../../shared/errors.js';
import {
  adminCommandResponse,
  adminConnectionsResponse,
  adminDisconnectBody,
  adminNodesResponse,
  adminPresenceResponse,
  adminRoomPath,
  adminRoomsQuery,
  adminRoomsResponse,
  adminTenantPath,
  adminUnsubscribeBody,
  adminUserPath,
} from '../../shared/schemas.js';
import { BODY_REFUSALS, type RouteDoc, type RouteDocs, TOKEN_REFUSALS } from './openapi.js';

/**
 * The operator API (admin.ts) in the OpenAPI document: its requests and answers are the zod schemas
 * of shared/schemas.ts. Every call is Bearer only (no cookie): OPERATOR_API_KEY for any tenant, or a
 * token with role admin for its own.
 */

/** What every operator call may answer (admin.ts `route`: the `auth` budget, the credential, `http:read`/`write`, the role). */
const CALLER: ErrorCode[] = [...TOKEN_REFUSALS, 'forbidden'];
const PATH: ErrorCode[] = ['validation_failed', 'payload_too_deep'];
const BODY = BODY_REFUSALS;

const admin = (doc: Omit<RouteDoc, 'tag' | 'security'>): RouteDoc => ({ tag: 'operator', security: ['operatorKey', 'bearer'], ...doc });
const gathered =
  'Gathered from every node; `complete` is false and `missing` names the nodes that did not answer within OPERATOR_TIMEOUT_MS.';

export const ADMIN_ROUTE_DOCS: RouteDocs = {
  'GET /api/admin/nodes': admin({
    operationId: 'adminNodes',
    summary: 'The nodes of the cluster with their connection counts and version',
    description: `The operator key counts every connection; an admin token, its tenant's. ${gathered}`,
    ok: { 200: { description: 'One entry per node that answered.', schema: adminNodesResponse } },
    errors: [...CALLER],
  }),
  'GET /api/admin/tenants/:tenant/rooms': admin({
    operationId: 'adminRooms',
    summary: 'The rooms of a tenant with their member counts, most connections first',
    description: gathered,
    params: adminTenantPath,
    query: adminRoomsQuery,
    ok: { 200: { description: 'The rooms; `truncated` when more than `limit`.', schema: adminRoomsResponse } },
    errors: [...CALLER, ...PATH],
  }),
  'GET /api/admin/tenants/:tenant/rooms/:room/presence': admin({
    operationId: 'adminPresence',
    summary: 'Who is in a room, across nodes',
    params: adminRoomPath,
    ok: { 200: { description: 'The members with their connection counts and presence state.', schema: adminPresenceResponse } },
    errors: [...CALLER, ...PATH, 'invalid_room'],
  }),
  'GET /api/admin/tenants/:tenant/users/:userId/connections': admin({
    operationId: 'adminConnections',
    summary: 'The live connections of a user, across nodes',
    description: gathered,
    params: adminUserPath,
    ok: { 200: { description: 'One entry per connection.', schema: adminConnectionsResponse } },
    errors: [...CALLER, ...PATH],
  }),
  'POST /api/admin/tenants/:tenant/users/:userId/disconnect': admin({
    operationId: 'adminDisconnect',
    summary: 'Disconnect every connection of a user, on every node',
    description: `Each connection is told why first (\`server:disconnect\`): \`disconnected_by_operator\` (final), or with \`reconnect: true\` \`reconnect_requested\` (the client comes back at once). The body is optional. ${gathered}`,
    params: adminUserPath,
    body: adminDisconnectBody,
    bodyOptional: true,
    ok: { 200: { description: 'How many connections it applied to.', schema: adminCommandResponse } },
    errors: [...CALLER, ...PATH, ...BODY],
  }),
  'POST /api/admin/tenants/:tenant/users/:userId/unsubscribe': admin({
    operationId: 'adminUnsubscribe',
    summary: 'Remove every connection of a user from a room, on every node',
    description: gathered,
    params: adminUserPath,
    body: adminUnsubscribeBody,
    ok: { 200: { description: 'How many connections it applied to.', schema: adminCommandResponse } },
    errors: [...CALLER, ...PATH, ...BODY, 'invalid_room'],
  }),
};
