import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Thrown to the caller of `withDeadline` when the database has not answered in time. The work may
 * still be going on (or have committed): see `withDeadline`.
 */
export class DeadlineExceeded extends Error {
  override name = 'DeadlineExceeded';
  readonly code = 'DEADLINE_EXCEEDED';
  constructor(readonly ms: number) {
    super(`the database did not answer within ${ms} ms`);
  }
}

interface Scope {
  readonly ms: number;
  expired: boolean;
}

const scopes = new AsyncLocalStorage<Scope>();

/**
 * Runs `fn` and settles within `ms`: after that the caller gets `DeadlineExceeded`, and from then on
 * the clients wrapped by `guardClient` refuse every further statement `fn` issues — a transaction
 * that has not sent its COMMIT yet rolls back instead of committing late, including one whose
 * BEGIN was still waiting for a connection. What was already sent cannot be recalled: a statement
 * outside a transaction that sits in the driver's queue, or a COMMIT in flight, may still be
 * applied. So the caller must say "unavailable, retry", never "not applied".
 */
export function withDeadline<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { ms, expired: false };
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      scope.expired = true;
      reject(new DeadlineExceeded(ms));
    }, ms);
    // A late failure after the deadline is swallowed here (the caller already has its answer).
    scopes.run(scope, fn).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

function refuseIfExpired(scope: Scope | undefined): void {
  if (scope?.expired) throw new DeadlineExceeded(scope.ms);
}

type Callback = (client: unknown) => unknown;
/** The part of a postgres.js `Sql` (or transaction) that drizzle uses. */
interface SqlLike {
  unsafe(...args: unknown[]): unknown;
  begin?(...args: unknown[]): Promise<unknown>;
  savepoint?(...args: unknown[]): Promise<unknown>;
}

/**
 * Wraps a postgres.js client so that statements issued under an expired `withDeadline` are refused
 * (drizzle calls `unsafe`, `begin` and `savepoint`; everything else passes through). A transaction
 * checks its deadline when it starts, before each statement and once more before COMMIT.
 */
export function guardClient<C extends object>(client: C): C {
  return wrap(client, () => scopes.getStore());
}

function wrap<C extends object>(client: C, scopeOf: () => Scope | undefined): C {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      const sqlLike = target as unknown as SqlLike;
      if (prop === 'unsafe' && typeof value === 'function') {
        return (...args: unknown[]) => {
          refuseIfExpired(scopeOf());
          return sqlLike.unsafe(...args);
        };
      }
      if ((prop === 'begin' || prop === 'savepoint') && typeof value === 'function') {
        return (...args: unknown[]) => {
          const scope = scopeOf();
          const method = (prop === 'begin' ? sqlLike.begin : sqlLike.savepoint)!.bind(target);
          if (!scope) return method(...args);
          refuseIfExpired(scope);
          const fn = args.pop() as Callback;
          return method(...args, async (tx: object) => {
            refuseIfExpired(scope);
            const result = await fn(wrap(tx, () => scope));
            // The caller may have been answered meanwhile: roll back rather than commit late.
            refuseIfExpired(scope);
            return result;
          });
        };
      }
      return value;
    },
  });
}
