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

/** The deadline of one store call, handed to the work so that it can check it. */
export interface Deadline {
  readonly ms: number;
  readonly expired: boolean;
  /** Throws DeadlineExceeded once the deadline has passed. */
  check(): void;
}

/**
 * Runs `fn` and settles within `ms`: after that the caller gets `DeadlineExceeded`. The work itself
 * goes on until it checks its deadline: a transaction run with `transactionWithin` rolls back
 * instead of committing late, including one whose BEGIN was still waiting for a connection. What
 * was already sent cannot be recalled: a statement outside a transaction that sits in the driver's
 * queue, or a COMMIT in flight, may still be applied. So the caller must say "unavailable, retry",
 * never "not applied".
 *
 * The deadline is passed explicitly, not through AsyncLocalStorage: on Node 20 that turns on
 * promise hooks for the whole process, and the write path's CPU per transition rose by a quarter.
 */
export function withDeadline<T>(ms: number, fn: (deadline: Deadline) => Promise<T>): Promise<T> {
  let expired = false;
  const deadline: Deadline = {
    ms,
    get expired() {
      return expired;
    },
    check() {
      if (expired) throw new DeadlineExceeded(ms);
    },
  };
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      expired = true;
      reject(new DeadlineExceeded(ms));
    }, ms);
    // A late failure after the deadline is swallowed here (the caller already has its answer).
    fn(deadline).then(
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

/** What `transactionWithin` needs of a database handle (drizzle's). */
export interface Transactional<Tx> {
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
}

/**
 * `db.transaction(body)` that refuses to start once `deadline` has passed (its BEGIN got a
 * connection late) and rolls back rather than committing when `body` finishes after it: the caller
 * was already answered store_unavailable.
 */
export function transactionWithin<Tx, T>(db: Transactional<Tx>, deadline: Deadline | null, body: (tx: Tx) => Promise<T>): Promise<T> {
  if (!deadline) return db.transaction(body);
  deadline.check();
  return db.transaction(async (tx) => {
    deadline.check();
    const result = await body(tx);
    deadline.check();
    return result;
  });
}
