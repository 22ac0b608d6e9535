import { createHash } from 'node:crypto';
import { createRemoteJWKSet, errors, type JWTVerifyGetKey, type JWTVerifyOptions, jwtVerify } from 'jose';
import { AppError } from '../errors.js';
import { type FluxoClaims, fluxoClaimsSchema } from './claims.js';
import type { Principal, TokenVerifier } from './types.js';

const HMAC_ALGS = new Set(['HS256', 'HS384', 'HS512']);

/**
 * A token verified here is not verified again for this long: the same bytes verify the same way,
 * and every HTTP request re-sends its bearer token (the signature check was ~7 % of a node's CPU
 * in the write-path bench, through WebCrypto's thread pool). Short, so that a signing key removed
 * from a JWKS stops being honoured soon (jose itself keeps fetched keys for 10 minutes).
 * Expiry and revocation are still checked on every call.
 */
const VERIFIED_CACHE_MS = 30_000;
/** Bounds the cache's memory (a token is a few hundred bytes); the oldest entry goes first. */
const VERIFIED_CACHE_MAX = 10_000;

interface Verified {
  claims: FluxoClaims;
  revocationKey: string;
  /** The bare `jti`: how revocations were keyed before they were scoped by tenant (see `revocationKeyOf`). */
  legacyKey: string | undefined;
  /** Date.now() after which the signature is checked again. */
  until: number;
}
const ASYMMETRIC_ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']);

export interface TokenVerifierOptions {
  /** HS256/384/512 secret. Exactly one of `secret`, `jwksUrl`, `keySet` must be given. */
  secret?: string;
  /** JWKS endpoint for RS/PS/ES/EdDSA tokens; keys are fetched and cached by jose. */
  jwksUrl?: string;
  /** A ready key resolver such as jose's `createLocalJWKSet` (tests, or keys shipped in config). Treated like `jwksUrl`. */
  keySet?: JWTVerifyGetKey;
  /** Required `iss`, when set. */
  issuer?: string;
  /** Required `aud`, when set. */
  audience?: string;
  /**
   * Accepted `alg` values. Pinned so a token cannot choose its own algorithm
   * (HS256-signed-with-the-public-key confusion, `alg: none`).
   * @default ['HS256'] with a secret, ['RS256', 'ES256'] with JWKS
   */
  algorithms?: string[];
  /** Seconds of clock skew tolerated on exp/nbf/iat. */
  clockToleranceS: number;
  /** Consulted after the signature and claims check; `true` rejects with token_revoked. */
  isRevoked?: (key: string) => Promise<boolean> | boolean;
  /**
   * How long a JWKS fetch may take before the identity provider counts as unavailable.
   * @default 5000 (jose's default)
   */
  jwksTimeoutMs?: number;
  /** Told when the signing keys cannot be fetched (each time: the caller rate-limits its logging). */
  onKeysUnavailable?: (err: unknown) => void;
}

/**
 * Builds the one TokenVerifier a node uses for handshakes, cookies and HTTP.
 * Throws a plain Error at construction when the options are contradictory (a start-up error).
 */
export function createTokenVerifier(opts: TokenVerifierOptions): TokenVerifier {
  const { key, algorithms } = resolveKey(opts);
  const verifyOptions: JWTVerifyOptions = {
    algorithms,
    requiredClaims: ['exp', 'sub', 'tid', 'role'],
    clockTolerance: opts.clockToleranceS,
    ...(opts.issuer ? { issuer: opts.issuer } : {}),
    ...(opts.audience ? { audience: opts.audience } : {}),
  };

  const verified = new VerifiedCache();
  async function verifyFully(token: string): Promise<Verified> {
    let payload: unknown;
    try {
      payload = (typeof key === 'function' ? await jwtVerify(token, key, verifyOptions) : await jwtVerify(token, key, verifyOptions))
        .payload;
    } catch (err) {
      throw mapJoseError(err);
    }
    const parsed = fluxoClaimsSchema.safeParse(payload);
    if (!parsed.success) {
      const claim = parsed.error.issues[0]?.path[0];
      throw new AppError('token_invalid', `The token's ${typeof claim === 'string' ? `"${claim}" ` : ''}claim is not valid.`);
    }
    const claims = parsed.data;
    const entry = {
      claims,
      revocationKey: revocationKeyOf(claims, token),
      legacyKey: claims.jti,
      until: Date.now() + VERIFIED_CACHE_MS,
    };
    verified.set(token, entry);
    return entry;
  }

  return {
    async verify(token: string): Promise<Principal> {
      if (typeof token !== 'string' || token.length === 0) throw new AppError('token_invalid', 'No token was given.');
      // A JWT this large is not one we issued; refuse before any parsing work.
      if (token.length > 8192) throw new AppError('token_invalid', 'The token is too large.');

      const { claims, revocationKey, legacyKey } = verified.get(token, Date.now(), opts.clockToleranceS) ?? (await verifyFully(token));
      if (opts.isRevoked) {
        // The bare jti too, until the revocations recorded before keys were scoped by tenant have
        // expired (no new one is written, so another tenant cannot create one).
        if ((await opts.isRevoked(revocationKey)) || (legacyKey !== undefined && (await opts.isRevoked(legacyKey)))) {
          throw new AppError('token_revoked');
        }
      }

      return {
        userId: claims.sub,
        tenant: claims.tid,
        role: claims.role,
        name: claims.name ?? null,
        exp: claims.exp,
        revocationKey,
      };
    },
  };
}

/**
 * The key a token is revoked under. A `jti` is unique only within its issuer's tokens, and tenants
 * may come from different issuers (or choose their own ids): it is scoped by tenant, so a token of
 * one tenant can neither revoke nor collide with another tenant's token of the same `jti`. Without
 * a `jti`, the sha256 of the token (which covers its `tid`). Tenant ids contain no ':', and hashes
 * none at all, so the two forms never meet.
 */
export function revocationKeyOf(claims: Pick<FluxoClaims, 'tid' | 'jti'>, token: string): string {
  return claims.jti === undefined ? createHash('sha256').update(token).digest('hex') : `jti:${claims.tid}:${claims.jti}`;
}

/** Tokens whose signature and claims passed, by the token's exact text. */
class VerifiedCache {
  private readonly map = new Map<string, Verified>();

  /** The entry, unless it is stale; throws token_expired as jose would once `exp` has passed. */
  get(token: string, nowMs: number, toleranceS: number): Verified | undefined {
    const hit = this.map.get(token);
    if (!hit) return undefined;
    if (hit.until <= nowMs) {
      this.map.delete(token);
      return undefined;
    }
    // jose: expired when exp <= now - tolerance, in whole seconds.
    if (hit.claims.exp <= Math.floor(nowMs / 1000) - toleranceS) {
      this.map.delete(token);
      throw new AppError('token_expired');
    }
    return hit;
  }

  set(token: string, entry: Verified): void {
    if (this.map.size >= VERIFIED_CACHE_MAX) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
    this.map.set(token, entry);
  }
}

function resolveKey(opts: TokenVerifierOptions): { key: Uint8Array | JWTVerifyGetKey; algorithms: string[] } {
  const sources = [opts.secret, opts.jwksUrl, opts.keySet].filter((s) => s !== undefined).length;
  if (sources !== 1) throw new Error('token verifier: set exactly one of JWT_SECRET or JWT_JWKS_URL');
  if (opts.algorithms?.length === 0) throw new Error('token verifier: JWT_ALGORITHMS must not be empty');

  if (opts.secret !== undefined) {
    if (opts.secret.length < 32) throw new Error('token verifier: JWT_SECRET must be at least 32 characters');
    const algorithms = opts.algorithms ?? ['HS256'];
    const bad = algorithms.filter((a) => !HMAC_ALGS.has(a));
    if (bad.length > 0) throw new Error(`token verifier: JWT_SECRET only allows HS256/HS384/HS512, not ${bad.join(', ')}`);
    return { key: new TextEncoder().encode(opts.secret), algorithms };
  }

  const algorithms = opts.algorithms ?? ['RS256', 'ES256'];
  const bad = algorithms.filter((a) => !ASYMMETRIC_ALGS.has(a));
  if (bad.length > 0) throw new Error(`token verifier: JWT_JWKS_URL only allows asymmetric algorithms, not ${bad.join(', ')}`);
  const key = opts.keySet ?? remoteKeys(opts);
  return { key, algorithms };
}

/**
 * jose's remote key set, whose fetch failures become `auth_unavailable` (503, retryable): the
 * identity provider is down, slow or answering garbage, and the token may well be good. Only the
 * key lookup is wrapped, so nothing in a token can make it look like an outage; a key the set
 * does not hold stays token_invalid.
 */
function remoteKeys(opts: TokenVerifierOptions): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(opts.jwksUrl as string), { timeoutDuration: opts.jwksTimeoutMs ?? 5000 });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (!isKeySourceFailure(err)) throw err;
      opts.onKeysUnavailable?.(err);
      throw new AppError('auth_unavailable');
    }
  };
}

/** A failure to get the key set (network, timeout, non-200, not JSON, not a JWKS), not a token problem. */
function isKeySourceFailure(err: unknown): boolean {
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return true;
  // fetch's TypeError (refused, reset, DNS) and the like; jose's own errors are JOSEError subclasses.
  if (!(err instanceof errors.JOSEError)) return true;
  // jose throws the generic class only for a non-200 answer or a body that is not JSON.
  return err.code === errors.JOSEError.code;
}

/** jose's messages can quote claim values; clients get our own short, fixed text instead. */
function mapJoseError(err: unknown): AppError {
  if (err instanceof AppError) return err; // auth_unavailable, from the key lookup
  if (err instanceof errors.JWTExpired) return new AppError('token_expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    const claim = /^[a-z]{2,5}$/.test(err.claim) ? `"${err.claim}" ` : '';
    return new AppError('token_invalid', `The token's ${claim}claim is not valid.`);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return new AppError('token_invalid', 'The token signature is not valid.');
  if (err instanceof errors.JOSEAlgNotAllowed) return new AppError('token_invalid', 'The token algorithm is not allowed.');
  if (err instanceof errors.JWKSNoMatchingKey) return new AppError('token_invalid', 'No key matches the token.');
  // A JWKS outage is auth_unavailable (above); anything else unexpected is refused.
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || !(err instanceof errors.JOSEError)) {
    return new AppError('token_invalid', 'The token could not be checked against the signing keys.');
  }
  return new AppError('token_invalid', 'The token is malformed.');
}
