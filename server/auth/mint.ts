import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Role } from '../../shared/protocol.js';
import { displayNameSchema, roleSchema, tenantSchema, userIdSchema } from './claims.js';

export interface MintOptions {
  sub: string;
  tid: string;
  role: Role;
  name?: string;
  /** Lifetime in seconds. */
  ttlS: number;
  /** HS256 secret, at least 32 characters. */
  secret: string;
  issuer?: string;
  audience?: string;
}

/**
 * Signs an HS256 JWT with a fresh `jti`, `iat` and `exp`. Used by `npm run token`, the dev login
 * and tests. Throws a plain Error when an input would produce a token the verifier refuses.
 */
export async function mintToken(opts: MintOptions): Promise<string> {
  userIdSchema.parse(opts.sub);
  tenantSchema.parse(opts.tid);
  roleSchema.parse(opts.role);
  if (opts.name !== undefined) displayNameSchema.parse(opts.name);
  if (!Number.isInteger(opts.ttlS) || opts.ttlS <= 0) throw new Error('ttlS must be a positive integer');
  if (opts.secret.length < 32) throw new Error('the HS256 secret must be at least 32 characters');

  const jwt = new SignJWT({ tid: opts.tid, role: opts.role, ...(opts.name !== undefined ? { name: opts.name } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.sub)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime(`${opts.ttlS}s`);
  if (opts.issuer) jwt.setIssuer(opts.issuer);
  if (opts.audience) jwt.setAudience(opts.audience);
  return jwt.sign(new TextEncoder().encode(opts.secret));
}
