import { z } from 'zod';
import { FORBIDDEN_KEYS, MAX_JSON_DEPTH, screenJson } from './json-screen.js';
import { ROLES } from './model.js';
import { TENANT_ID } from './rooms.js';

// The check runs on the raw input: once parsed into a record, a `__proto__` key would already be
// gone. (The server screens every input the same way first, with the path in the error.)
export const jsonObject = z
  .unknown()
  .refine((v) => screenJson(v, { maxDepth: MAX_JSON_DEPTH }) === null, {
    message: `at most ${MAX_JSON_DEPTH} levels deep; no U+0000; keys __proto__, constructor and prototype are not allowed`,
  })
  .pipe(z.record(z.string(), z.unknown()));

/** Ids of workflows, processes and users, in bodies, queries and paths. */
export const id = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.@-]+$/, 'letters, digits and _ . @ - only');
// A stage is also a key of `transitions`: names that reach a prototype are refused here too.
const stage = z
  .string()
  .min(1)
  .max(64)
  .refine((s) => !FORBIDDEN_KEYS.has(s), { message: 'stage names __proto__, constructor and prototype are not allowed' });

export const createWorkflowSchema = z
  .object({
    name: z.string().min(1).max(200),
    stages: z.array(stage).min(1).max(50),
    transitions: z.record(stage, z.array(stage).max(50)),
  })
  .strict()
  .superRefine((wf, ctx) => {
    if (new Set(wf.stages).size !== wf.stages.length) ctx.addIssue({ code: 'custom', path: ['stages'], message: 'stages must be unique' });
    for (const [from, tos] of Object.entries(wf.transitions)) {
      if (!wf.stages.includes(from)) ctx.addIssue({ code: 'custom', path: ['transitions', from], message: `unknown stage ${from}` });
      for (const to of tos)
        if (!wf.stages.includes(to)) ctx.addIssue({ code: 'custom', path: ['transitions', from], message: `unknown stage ${to}` });
    }
  });
export type CreateWorkflowInput = z.infer<typeof createWorkflowSchema>;

export const createProcessSchema = z
  .object({
    workflowId: id,
    title: z.string().min(1).max(500),
    stage: stage.optional(),
    assignee: id.nullable().optional(),
    data: jsonObject.optional(),
  })
  .strict();
export type CreateProcessInput = z.infer<typeof createProcessSchema>;

export const listProcessesQuery = z.object({
  workflowId: id.optional(),
  stage: stage.optional(),
  assignee: id.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** Opaque cursor from the previous page's `nextCursor`. */
  cursor: z.string().max(200).optional(),
  /**
   * `true`: the response also carries `total`, how many processes match the filters (whatever the
   * cursor). Asked for, not always sent: counting reads every matching row, and a client paging
   * through a list needs it once, not per page.
   */
  total: z.stringbool().optional(),
});
export type ListProcessesQuery = z.infer<typeof listProcessesQuery>;

/**
 * Names one request so that it can be retried safely: a repeat with the same requestId (same
 * tenant) is answered with the first request's result and writes nothing.
 */
const requestId = z.string().min(1).max(128);

export const transitionSchema = z
  .object({
    processId: id,
    to: stage,
    expectedVersion: z.number().int().min(0).optional(),
    requestId: requestId.optional(),
    data: jsonObject.optional(),
  })
  .strict();
/** The HTTP body of POST /api/processes/:id/transition (the id comes from the path). */
export const transitionBodySchema = transitionSchema.omit({ processId: true });

export const subscribeSchema = z
  .object({
    room: z.string().max(160),
    /** Replay the room's stored events with an id greater than this (the `id` of your position). */
    after: z.number().int().min(0).optional(),
  })
  .strict();
export const unsubscribeSchema = z.object({ room: z.string().max(160) }).strict();
export const presenceUpdateSchema = z
  .object({
    room: z.string().max(160),
    state: jsonObject.refine((s) => JSON.stringify(s).length <= 1024, { message: 'presence state is at most 1 KiB' }),
  })
  .strict();
export const refreshSchema = z.object({ token: z.string().min(1).max(8192) }).strict();

export const eventsQuery = z.object({
  room: z.string().max(160),
  after: z.coerce.number().int().min(0).default(0),
  /**
   * With `before`, the page is the newest `limit` events with `after` < id < `before` (still in id
   * order): recent history, e.g. everything up to a subscribe's `position.id` with `before` = it + 1.
   */
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** One event of the publish API. */
export const publishEventSchema = z
  .object({
    tenant: z.string().regex(TENANT_ID),
    room: z.string().max(160),
    type: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[a-z0-9_.:-]+$/i),
    data: jsonObject.default({}),
  })
  .strict();
export type PublishInput = z.infer<typeof publishEventSchema>;
/** One event, with the requestId that makes a retry safe. */
export const publishSchema = publishEventSchema.extend({ requestId: requestId.optional() }).strict();
/**
 * Up to 1,000 events in one call, committed together, ids in the order given. One requestId names
 * the whole call: a retry gets every event of the first call back.
 */
export const publishBatchSchema = z
  .object({ events: z.array(publishEventSchema).min(1).max(1000), requestId: requestId.optional() })
  .strict();

export const sessionSchema = z.object({ token: z.string().min(1).max(8192) }).strict();

// ---- Operator API (/api/admin) --------------------------------------------------------------
// Inputs and answers both, so the OpenAPI document can be generated from them.

const tenantId = z.string().regex(TENANT_ID).describe('Tenant id');
/** A tenant-relative room (`tenant`, `workflow:<id>`, `process:<id>`, `user:<id>`); any other form is answered `invalid_room`. */
const roomParam = z.string().min(1).max(160).describe('Tenant-relative room: tenant, workflow:<id>, process:<id> or user:<id>');

export const adminTenantPath = z.object({ tenant: tenantId });
export const adminRoomPath = adminTenantPath.extend({ room: roomParam });
export const adminUserPath = adminTenantPath.extend({ userId: id });

export const adminRoomsQuery = z.object({
  /** Rooms with the most connections first; the rest is cut (`truncated`). */
  limit: z.coerce.number().int().min(1).max(1000).default(500),
});

export const adminDisconnectBody = z
  .object({
    /**
     * False (the default): `disconnected_by_operator`, a final code — clients must not reconnect
     * (the SDK stops). True: `reconnect_requested`, retryable — clients come back at once.
     */
    reconnect: z.boolean().default(false),
    /** Shown to the client in `server:disconnect`; the catalog's message when absent. */
    message: z.string().min(1).max(200).optional(),
  })
  .strict();
export type AdminDisconnectInput = z.infer<typeof adminDisconnectBody>;

export const adminUnsubscribeBody = z.object({ room: roomParam }).strict();

/** Present on answers gathered from every node: nodes that did not answer within OPERATOR_TIMEOUT_MS. */
const coverage = {
  /** True when every node believed alive answered. */
  complete: z.boolean(),
  /** Ids of the nodes that did not answer in time; their connections are not counted (retry). */
  missing: z.array(z.string()),
};

export const adminNodeSchema = z.object({
  nodeId: z.string(),
  /** package.json version of the Fluxo it runs. */
  version: z.string(),
  startedAt: z.string().describe('ISO time the node started'),
  /** Live Socket.IO connections on the node: all of them for the operator key, the tenant's for an admin token. */
  connections: z.number().int().min(0),
  /** The node that answered this request. */
  self: z.boolean(),
});
export type AdminNode = z.infer<typeof adminNodeSchema>;
export const adminNodesResponse = z.object({ data: z.array(adminNodeSchema), ...coverage });

export const adminRoomSchema = z.object({
  room: z.string(),
  /** Distinct users with a connection subscribed to the room, across nodes. */
  users: z.number().int().min(0),
  connections: z.number().int().min(0),
});
export type AdminRoom = z.infer<typeof adminRoomSchema>;
export const adminRoomsResponse = z.object({ data: z.array(adminRoomSchema), truncated: z.boolean(), ...coverage });

export const presenceMemberSchema = z.object({
  userId: z.string(),
  name: z.string().nullable(),
  connections: z.number().int().min(0),
  state: z.record(z.string(), z.unknown()).nullable(),
});
export const adminPresenceSchema = z.object({
  room: z.string(),
  users: z.number().int().min(0),
  connections: z.number().int().min(0),
  members: z.array(presenceMemberSchema),
});
export type AdminPresence = z.infer<typeof adminPresenceSchema>;
export const adminPresenceResponse = z.object({ data: adminPresenceSchema });

export const adminConnectionSchema = z.object({
  /** The Socket.IO socket id. */
  id: z.string(),
  nodeId: z.string(),
  transport: z.string().describe('websocket or polling'),
  /** The client IP as the node sees it (TRUST_PROXY applied). */
  address: z.string().nullable(),
  connectedAt: z.string().describe('ISO time of the handshake'),
  role: z.enum(ROLES as ['viewer', 'editor', 'admin']),
  tokenExpiresAt: z.string().describe('ISO time the token of the connection expires'),
  /** Tenant-relative rooms it is subscribed to. */
  rooms: z.array(z.string()),
});
export type AdminConnection = z.infer<typeof adminConnectionSchema>;
export const adminConnectionsResponse = z.object({ data: z.array(adminConnectionSchema), ...coverage });

export const adminCommandSchema = z.object({
  /** Connections the command applied to, across the nodes that answered. */
  connections: z.number().int().min(0),
});
export const adminCommandResponse = z.object({ data: adminCommandSchema, ...coverage });
