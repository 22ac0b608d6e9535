/**
 * The HS256 secret used when JWT_SECRET is unset outside production, so `npm start` and
 * `npm run token` work together out of the box. It is public (it is in the repository): tokens
 * signed with it prove nothing, which is why production refuses to start without a real secret
 * or JWKS.
 */
export const DEV_JWT_SECRET = 'fluxo-development-only-secret-do-not-use-in-production';

export interface JwtSecretEnv {
  NODE_ENV?: string;
  JWT_SECRET?: string;
  JWT_JWKS_URL?: string;
}

/**
 * The HS256 secret to use, or `undefined` when tokens are verified with JWKS instead.
 * Throws in production when neither JWT_SECRET nor JWT_JWKS_URL is set.
 */
export function resolveJwtSecret(env: JwtSecretEnv): string | undefined {
  if (env.JWT_SECRET) return env.JWT_SECRET;
  if (env.JWT_JWKS_URL) return undefined;
  if (env.NODE_ENV === 'production') {
    throw new Error('JWT_SECRET or JWT_JWKS_URL is required when NODE_ENV=production');
  }
  return DEV_JWT_SECRET;
}
