import { z } from 'zod';
import { ERROR_CODES, type ErrorBody, type ErrorCode } from '../../shared/errors.js';
import { type FluxoEvent, type Me, type Process, ROLES, type Role, type TransitionResult, type Workflow } from '../../shared/protocol.js';

/**
 * The answers of the HTTP API as zod schemas, for the OpenAPI document only (the server builds its
 * answers from the types in shared/protocol.ts, which `satisfies` ties these to). Objects are closed
 * (`additionalProperties: false`), so test/integration/openapi.test.ts, which validates real answers
 * against the document, fails on a field nobody documented.
 */

/** Schemas that become `components.schemas.<id>` and are referenced from every operation that uses them. */
export const components = z.registry<{ id: string }>();

const isoTime = z.iso.datetime().describe('ISO 8601, UTC');
export const roleSchema = z.enum(ROLES as [Role, ...Role[]]);

export const workflowSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    stages: z.array(z.string()).describe('Ordered stage names.'),
    transitions: z.record(z.string(), z.array(z.string())).describe('Allowed moves: `from` stage → `to` stages.'),
    createdAt: isoTime,
  })
  .register(components, { id: 'Workflow' }) satisfies z.ZodType<Workflow>;

export const processSchema = z
  .object({
    id: z.string(),
    workflowId: z.string(),
    title: z.string(),
    stage: z.string(),
    assignee: z.string().nullable(),
    data: z.record(z.string(), z.unknown()),
    version: z.number().int().min(1).describe('Grows by one with each change: pass it as `expectedVersion`.'),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .register(components, { id: 'Process' }) satisfies z.ZodType<Process>;

export const eventSchema = z
  .object({
    id: z.number().int().min(1).describe('Monotonic per tenant.'),
    type: z.string().describe('`process.created`, `process.transitioned`, or a published type.'),
    rooms: z.array(z.string()),
    offsets: z.array(z.number().int().min(1)).describe("`offsets[i]` is the event's position in `rooms[i]`."),
    processId: z.string().nullable(),
    workflowId: z.string().nullable(),
    fromStage: z.string().nullable(),
    toStage: z.string().nullable(),
    version: z.number().int().nullable(),
    actor: z.string(),
    at: isoTime,
    data: z.record(z.string(), z.unknown()),
  })
  .register(components, { id: 'FluxoEvent' }) satisfies z.ZodType<FluxoEvent>;

export const transitionResultSchema = z
  .object({
    process: processSchema,
    event: eventSchema,
    replayed: z.boolean().describe('True when `requestId` had been seen: this is the first result, nothing was written.'),
  })
  .register(components, { id: 'TransitionResult' }) satisfies z.ZodType<TransitionResult>;

export const meSchema = z
  .object({ userId: z.string(), tenant: z.string(), role: roleSchema, name: z.string().nullable(), exp: z.number().int() })
  .register(components, { id: 'Me' }) satisfies z.ZodType<Me>;

export const errorBodySchema = z
  .object({
    code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    retryAfterMs: z.number().int().optional().describe('On `rate_limited`.'),
    current: z.unknown().optional().describe('On `version_conflict`: the process as it is now.'),
    issues: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe('On `validation_failed`: where the input went wrong.'),
  })
  .register(components, { id: 'ErrorBody' }) satisfies z.ZodType<ErrorBody>;

/** `{ data: T }`, the body of every successful API answer. */
export function data<T extends z.ZodType>(schema: T) {
  return z.object({ data: schema });
}
