import { z } from 'zod';
import { LONE_SURROGATE } from '../../shared/json-screen.js';
import { ROLES } from '../../shared/protocol.js';

/** User id: what `sub` may hold. Kept to a safe alphabet because it ends up in room names, keys and logs. */
export const userIdSchema = z.string().regex(/^[A-Za-z0-9_.@-]{1,128}$/, 'sub must be 1..128 of [A-Za-z0-9_.@-]');
/** Tenant id: what `tid` may hold. */
export const tenantSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'tid must be 1..64 of [A-Za-z0-9_.-]');
export const roleSchema = z.enum(ROLES as ['viewer', 'editor', 'admin']);
/** No control characters (U+0000 among them: Postgres text refuses it) and no lone surrogates (stored as U+FFFD: another string). */
const plainText = (s: string) => !/\p{Cc}/u.test(s) && !LONE_SURROGATE.test(s);
export const displayNameSchema = z.string().max(100).refine(plainText, 'name must be text without control characters or lone surrogates');
/** The last second a JavaScript Date (and a Postgres timestamptz) holds comfortably: 9999-12-31T23:59:59Z. */
const MAX_EXP_S = 253_402_300_799;

/** The claims Fluxo reads from a verified JWT; anything else in the payload is ignored. */
export const fluxoClaimsSchema = z.object({
  sub: userIdSchema,
  tid: tenantSchema,
  role: roleSchema,
  name: displayNameSchema.optional(),
  // The revocation key: stored and compared as text, so it must round-trip unchanged.
  jti: z.string().min(1).max(256).refine(plainText, 'jti must be text without control characters or lone surrogates').optional(),
  exp: z.number().int().positive().max(MAX_EXP_S, 'exp must be before the year 10000'),
});

export type FluxoClaims = z.infer<typeof fluxoClaimsSchema>;
