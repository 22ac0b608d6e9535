import type { Principal } from './types.js';

/** The durable side of revocation (the database); tested with the store. */
export interface RevocationStore {
  revokeToken(key: string, expiresAt: Date): Promise<void>;
  isRevoked(key: string): Promise<boolean>;
}

export interface RevocationsOptions {
  store: RevocationStore;
  /**
   * Kept past `exp` because the verifier accepts a token up to JWT_CLOCK_TOLERANCE_S (max 300 s)
   * after it expires.
   * @default 300_000
   */
  graceMs?: number;
  /**
   * How long a "not revoked" answer from the store is reused on this node. A revocation made on
   * another node is then seen here at most this late (until a Redis broadcast calls `markRevoked`).
   * Capped at 1000 ms; 0 asks the store every time.
   * @default 0
   */
  negativeCacheMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Revoked token keys: written durably to the store, remembered in memory until the token would
 * have expired anyway. Use `isRevoked` as the verifier's `isRevoked` hook.
 */
export class Revocations {
  readonly #store: RevocationStore;
  readonly #graceMs: number;
  readonly #negativeCacheMs: number;
  readonly #now: () => number;
  /** key → time (ms) after which the entry can be forgotten. */
  readonly #revoked = new Map<string, number>();
  /** key → time (ms) until which "not revoked" may be reused. */
  readonly #notRevoked = new Map<string, number>();
  #nextPruneAt = 0;

  constructor(opts: RevocationsOptions) {
    this.#store = opts.store;
    this.#graceMs = opts.graceMs ?? 300_000;
    this.#negativeCacheMs = Math.min(Math.max(opts.negativeCacheMs ?? 0, 0), 1000);
    this.#now = opts.now ?? Date.now;
  }

  /** Revokes the principal's token: the store first (so a crash cannot lose it), then this node's cache. */
  async revoke(principal: Pick<Principal, 'revocationKey' | 'exp'>): Promise<void> {
    const expiresAtMs = principal.exp * 1000 + this.#graceMs;
    await this.#store.revokeToken(principal.revocationKey, new Date(expiresAtMs));
    this.markRevoked(principal.revocationKey, expiresAtMs);
  }

  /** Records a revocation learnt elsewhere (e.g. a Redis broadcast from another node) without touching the store. */
  markRevoked(key: string, expiresAtMs: number): void {
    this.#notRevoked.delete(key);
    if (expiresAtMs <= this.#now()) return;
    this.#revoked.set(key, Math.max(expiresAtMs, this.#revoked.get(key) ?? 0));
    this.#pruneSometimes();
  }

  /** Arrow property so it can be passed as `isRevoked` to createTokenVerifier unbound. */
  readonly isRevoked = async (key: string): Promise<boolean> => {
    const now = this.#now();
    const until = this.#revoked.get(key);
    if (until !== undefined) {
      if (until > now) return true;
      this.#revoked.delete(key);
    }
    const notUntil = this.#notRevoked.get(key);
    if (notUntil !== undefined && notUntil > now) return false;

    const revoked = await this.#store.isRevoked(key);
    if (revoked) {
      // The store does not tell us the expiry; the token's own exp check covers the rest.
      this.markRevoked(key, now + this.#graceMs);
    } else if (this.#negativeCacheMs > 0) {
      this.#notRevoked.set(key, now + this.#negativeCacheMs);
      this.#pruneSometimes();
    }
    return revoked;
  };

  /** Number of keys held in memory (for metrics and tests). */
  get size(): number {
    return this.#revoked.size;
  }

  #pruneSometimes(): void {
    const now = this.#now();
    if (now < this.#nextPruneAt) return;
    this.#nextPruneAt = now + 10_000;
    for (const [key, until] of this.#revoked) if (until <= now) this.#revoked.delete(key);
    for (const [key, until] of this.#notRevoked) if (until <= now) this.#notRevoked.delete(key);
  }
}
