import { AppError } from '../errors.js';
import { localRevocationBroadcast, type RevocationBroadcast } from './revocation-broadcast.js';
import type { Principal } from './types.js';

/** A revoked token key as stored: until when it matters and when it was recorded (the primary's clock). */
export interface RevokedKey {
  key: string;
  expiresAt: Date;
  revokedAt: Date;
}

/** The durable side of revocation (the database); tested with the store. */
export interface RevocationStore {
  revokeToken(key: string, expiresAt: Date): Promise<void>;
  /**
   * Unexpired revocations recorded (or extended) after `since`, every unexpired one when null.
   * May be served by a replica: it must not need the primary.
   */
  revokedSince(since: Date | null): Promise<RevokedKey[]>;
}

/** pino-compatible subset. */
interface RevocationsLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** How often each node reads the revocations recorded since its last read. */
export const REVOCATION_POLL_MS = 2_000;

export interface RevocationsOptions {
  store: RevocationStore;
  /**
   * Tells the other nodes of each revocation made here, and hears theirs (Redis); `start` listens
   * before its first read of the store, so nothing falls between.
   * @default localRevocationBroadcast (a single node)
   */
  broadcast?: RevocationBroadcast;
  /**
   * Kept past `exp` because the verifier accepts a token up to JWT_CLOCK_TOLERANCE_S (max 300 s)
   * after it expires.
   * @default 300_000
   */
  graceMs?: number;
  /** @default REVOCATION_POLL_MS */
  pollMs?: number;
  /**
   * Each read looks again this far behind the newest `revokedAt` already seen: a revocation whose
   * transaction committed after a later-stamped one is not skipped (the stamp is taken before the
   * commit). Re-read keys are harmless.
   * @default 10_000
   */
  overlapMs?: number;
  logger?: RevocationsLogger;
  /** @default Date.now */
  now?: () => number;
}

const silent: RevocationsLogger = { info() {}, warn() {} };
/** Until the first read succeeds, a failed one is retried after this long. */
const RETRY_UNLOADED_MS = 250;
/** A failing read is logged once, then at most this often while it keeps failing. */
const WARN_EVERY_MS = 30_000;

/**
 * Every revoked token key that has not expired yet, held in memory on each node, so that checking a
 * token (every handshake and authenticated request) never reads the database — authentication keeps
 * working while the primary is down.
 *
 * Kept current three ways: `revoke` on this node records the key at once; with Redis, a revocation
 * on another node arrives through the broadcast (revocation-broadcast.ts → `markRevoked`) at once; and
 * every `pollMs` the node reads the rows recorded since its last read (`revokedSince`, from a replica
 * when one is healthy, else the primary). Hence the bound:
 *
 *   A revocation made on any node applies on every node within pollMs (2 s) plus the read's own time
 *   and the replica's replay lag — a replica lagging more than REPLICA_MAX_LAG_MS (5 s by default) is
 *   not read — so within about 8 s with the defaults; at once (one Redis message) with Redis.
 *
 * While the database cannot be read at all the node answers from memory: what it knew plus what
 * Redis brings (a revocation cannot be made meanwhile: it is written to the primary first). Before
 * the first successful read `loaded` is false and `isRevoked` refuses (the node reports not ready).
 */
export class Revocations {
  readonly #store: RevocationStore;
  readonly #broadcast: RevocationBroadcast;
  readonly #graceMs: number;
  readonly #pollMs: number;
  readonly #overlapMs: number;
  readonly #log: RevocationsLogger;
  readonly #now: () => number;
  /** key → time (ms) after which the entry can be forgotten. */
  readonly #revoked = new Map<string, number>();
  #nextPruneAt = 0;
  /** Newest `revokedAt` read so far (ms, the primary's clock); null before any row. */
  #cursor: number | null = null;
  /** When (this node's clock) the last read succeeded; null before the first. */
  #readAt: number | null = null;
  #reading: Promise<void> | null = null;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #started = false;
  #stopped = false;
  #failingSince: number | null = null;
  #lastWarn = 0;

  constructor(opts: RevocationsOptions) {
    this.#store = opts.store;
    this.#broadcast = opts.broadcast ?? localRevocationBroadcast;
    this.#graceMs = opts.graceMs ?? 300_000;
    this.#pollMs = Math.max(opts.pollMs ?? REVOCATION_POLL_MS, 10);
    this.#overlapMs = Math.max(opts.overlapMs ?? 10_000, 0);
    this.#log = opts.logger ?? silent;
    this.#now = opts.now ?? Date.now;
  }

  /** Revokes the principal's token: the store first (so a crash cannot lose it), then the other nodes and this node's memory. */
  async revoke(principal: Pick<Principal, 'revocationKey' | 'exp'>): Promise<void> {
    const expiresAtMs = principal.exp * 1000 + this.#graceMs;
    await this.#store.revokeToken(principal.revocationKey, new Date(expiresAtMs));
    await this.#broadcast.publish(principal.revocationKey, expiresAtMs);
    this.markRevoked(principal.revocationKey, expiresAtMs);
  }

  /** Records a revocation learnt elsewhere (a Redis broadcast, a read of the store). */
  markRevoked(key: string, expiresAtMs: number): void {
    if (expiresAtMs <= this.#now()) return;
    this.#revoked.set(key, Math.max(expiresAtMs, this.#revoked.get(key) ?? 0));
    this.#pruneSometimes();
  }

  /**
   * A memory lookup. Arrow property so it can be passed as `isRevoked` to createTokenVerifier
   * unbound. Throws `store_unavailable` until the first read of the store succeeded: the set
   * would be empty, not known.
   */
  readonly isRevoked = (key: string): boolean => {
    if (this.#readAt === null) throw new AppError('store_unavailable', 'Token revocations are not loaded yet.');
    const until = this.#revoked.get(key);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#revoked.delete(key);
    return false;
  };

  /** Whether the store has been read once (until then the node is not ready). */
  get loaded(): boolean {
    return this.#readAt !== null;
  }

  /** Milliseconds since the last successful read; null before the first (for metrics). */
  get ageMs(): number | null {
    return this.#readAt === null ? null : this.#now() - this.#readAt;
  }

  /**
   * Reads what changed since the last read (everything unexpired the first time). Concurrent calls
   * share one read. Rejects when the store cannot be read; memory is kept as it was.
   */
  refresh(): Promise<void> {
    this.#reading ??= this.#read().finally(() => {
      this.#reading = null;
    });
    return this.#reading;
  }

  /**
   * Listens to the broadcast, reads once, then every `pollMs` until `stop`. Resolves after the
   * first read whether it succeeded or not (failures are logged and retried); returns `loaded`.
   */
  async start(): Promise<boolean> {
    if (!this.#started && !this.#stopped) {
      this.#started = true;
      await this.#broadcast.listen((key, untilMs) => this.markRevoked(key, untilMs));
      if (this.#stopped) return this.loaded;
      this.#timer = setInterval(() => void this.#poll(), this.#pollMs);
      this.#timer.unref();
      await this.#poll();
    }
    return this.loaded;
  }

  /** Stops polling and waits for a read in progress (so the store can be closed after). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
    await this.#reading?.catch(() => {});
  }

  /** Number of keys held in memory (for metrics and tests). */
  get size(): number {
    return this.#revoked.size;
  }

  async #read(): Promise<void> {
    const since = this.#cursor === null ? null : new Date(this.#cursor - this.#overlapMs);
    const rows = await this.#store.revokedSince(since);
    for (const row of rows) {
      this.markRevoked(row.key, row.expiresAt.getTime());
      const at = row.revokedAt.getTime();
      if (this.#cursor === null || at > this.#cursor) this.#cursor = at;
    }
    this.#readAt = this.#now();
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.refresh();
      if (this.#failingSince !== null) {
        this.#log.info({ failedForMs: this.#now() - this.#failingSince }, 'token revocations readable again');
        this.#failingSince = null;
      }
    } catch (err) {
      if (this.#stopped) return;
      // Not loaded means not ready and refusing tokens: try again soon rather than at the next poll
      // (e.g. a replica still replaying the migration that a new node just applied).
      if (!this.loaded && this.#retry === undefined) {
        this.#retry = setTimeout(
          () => {
            this.#retry = undefined;
            void this.#poll();
          },
          Math.min(RETRY_UNLOADED_MS, this.#pollMs),
        );
        this.#retry.unref();
      }
      const now = this.#now();
      this.#failingSince ??= now;
      if (now - this.#lastWarn >= WARN_EVERY_MS) {
        this.#lastWarn = now;
        this.#log.warn(
          { err: (err as Error).message, loaded: this.loaded, failingForMs: now - this.#failingSince },
          this.loaded ? 'reading token revocations failed; answering from memory' : 'token revocations not loaded yet; retrying',
        );
      }
    }
  }

  #pruneSometimes(): void {
    const now = this.#now();
    if (now < this.#nextPruneAt) return;
    this.#nextPruneAt = now + 10_000;
    for (const [key, until] of this.#revoked) if (until <= now) this.#revoked.delete(key);
  }
}
