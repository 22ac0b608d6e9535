import type { Role } from '../../shared/protocol.js';

/** The verified identity behind a request or socket. */
export interface Principal {
  userId: string;
  tenant: string;
  role: Role;
  name: string | null;
  /** Expiry, seconds since epoch. */
  exp: number;
  /** Key under which this token is revoked: `jti:<tenant>:<jti>`, or a hash of the token when it has no `jti`. */
  revocationKey: string;
}

export interface TokenVerifier {
  /** Throws AppError: token_invalid, token_expired, token_revoked; auth_unavailable when the JWKS cannot be fetched. */
  verify(token: string): Promise<Principal>;
}
