import { z } from 'zod';
import { FORBIDDEN_KEYS, MAX_JSON_DEPTH, screenJson } from './json-screen.js';
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

export const transitionSchema = z
  .object({
    processId: id,
    to: stage,
    expectedVersion: z.number().int().min(0).optional(),
    requestId: z.string().min(1).max(128).optional(),
    data: jsonObject.optional(),
  })
  .strict();
/** The HTTP body of POST /api/processes/:id/transition (the id comes from the path). */
export const transitionBodySchema = transitionSchema.omit({ processId: true });

export const subscribeSchema = z.object({ room: z.string().max(160), after: z.number().int().min(0).optional() }).strict();
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

export const publishSchema = z
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
export type PublishInput = z.infer<typeof publishSchema>;
/** Up to 1,000 events in one call, committed together, ids in the order given. */
export const publishBatchSchema = z.object({ events: z.array(publishSchema).min(1).max(1000) }).strict();

export const sessionSchema = z.object({ token: z.string().min(1).max(8192) }).strict();
