import { describe, expect, it } from 'vitest';
import { DeadlineExceeded, transactionWithin, withDeadline } from '../../server/store/deadline.js';

/** A database handle whose transactions record what they would send. */
function fakeDb() {
  const sent: string[] = [];
  const tx = {
    run: (q: string) => {
      sent.push(q);
      return Promise.resolve();
    },
  };
  const db = {
    transaction: async <T>(fn: (t: typeof tx) => Promise<T>): Promise<T> => {
      sent.push('BEGIN');
      try {
        const result = await fn(tx);
        sent.push('COMMIT');
        return result;
      } catch (err) {
        sent.push('ROLLBACK');
        throw err;
      }
    },
  };
  return { db, sent };
}

function gate(): { open: () => void; opened: Promise<void> } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

describe('withDeadline and transactionWithin', () => {
  it('pass everything through without a deadline, or while it has not passed', async () => {
    const { db, sent } = fakeDb();
    await transactionWithin(db, null, (tx) => tx.run('INSERT 0'));
    await withDeadline(1000, (d) => transactionWithin(db, d, (tx) => tx.run('INSERT 1')));
    expect(sent).toEqual(['BEGIN', 'INSERT 0', 'COMMIT', 'BEGIN', 'INSERT 1', 'COMMIT']);
  });

  it('answer DeadlineExceeded at the deadline, and roll back a transaction that finishes after it', async () => {
    const { db, sent } = fakeDb();
    const { open, opened } = gate();
    let settled: Promise<unknown> = Promise.resolve();
    const answer = withDeadline(30, (d) => {
      settled = transactionWithin(db, d, async (tx) => {
        await tx.run('UPDATE 1');
        await opened; // the database is slow to answer
        return 'done';
      });
      return settled;
    });
    await expect(answer).rejects.toBeInstanceOf(DeadlineExceeded);
    open();
    await expect(settled).rejects.toBeInstanceOf(DeadlineExceeded);
    expect(sent).toEqual(['BEGIN', 'UPDATE 1', 'ROLLBACK']);
  });

  it('start no transaction whose turn comes after the deadline', async () => {
    const { db, sent } = fakeDb();
    const { open, opened } = gate();
    let late: Promise<unknown> = Promise.resolve();
    const answer = withDeadline(30, (d) => {
      // Waiting for a connection until after the deadline.
      late = opened.then(() => transactionWithin(db, d, (tx) => tx.run('INSERT never')));
      return late;
    });
    await expect(answer).rejects.toBeInstanceOf(DeadlineExceeded);
    open();
    await expect(late).rejects.toBeInstanceOf(DeadlineExceeded);
    expect(sent).toEqual([]);
  });

  it('pass the work its own failure when it fails before the deadline', async () => {
    const failure = new Error('refused');
    await expect(withDeadline(1000, () => Promise.reject(failure))).rejects.toBe(failure);
  });
});
