import { z } from 'zod';
import { ROLES } from '../../shared/protocol.js';

/** User id: what `sub` may hold. Kept to a safe alphabet because it ends up in room names, keys and logs. */
export const userIdSchema = z.string().regex(/^[A-Za-z0-9_.@-]{1,128}$/, 'sub must be 1..128 of [A-Za-z0-9_.@-]');
/** Tenant id: what `tid` may hold. */
export const tenantSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'tid must be 1..64 of [A-Za-z0-9_.-]');
export const roleSchema = z.enum(ROLES as ['viewer', 'editor', 'admin']);
export const displayNameSchema = z.string().max(100);

/** The claims Fluxo reads from a verified JWT; anything else in the payload is ignored. */
export const fluxoClaimsSchema = z.object({
  sub: userIdSchema,
  tid: tenantSchema,
  role: roleSchema,
  name: displayNameSchema.optional(),
  jti: z.string().min(1).max(256).optional(),
  exp: z.number().int().positive(),
});

export type FluxoClaims = z.infer<typeof fluxoClaimsSchema>;
