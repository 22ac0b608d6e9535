import { describe, expect, it } from 'vitest';
import { DeadlineExceeded, guardClient, withDeadline } from '../../server/store/deadline.js';

/** The part of a postgres.js client the guard wraps, recording what it would send. */
function fakeClient() {
  const sent: string[] = [];
  const tx = {
    unsafe: (q: string) => {
      sent.push(q);
      return Promise.resolve([]);
    },
  };
  const client = {
    unsafe: tx.unsafe,
    begin: async (fn: (t: typeof tx) => Promise<unknown>) => {
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
  return { client: guardClient(client), sent };
}

function gate(): { open: () => void; opened: Promise<void> } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

describe('withDeadline and guardClient', () => {
  it('pass everything through outside a deadline, or while it has not passed', async () => {
    const { client, sent } = fakeClient();
    await client.unsafe('SELECT 1');
    await withDeadline(1000, () => client.begin((tx) => tx.unsafe('INSERT 1')));
    expect(sent).toEqual(['SELECT 1', 'BEGIN', 'INSERT 1', 'COMMIT']);
  });

  it('answer DeadlineExceeded at the deadline, and roll back a transaction that finishes after it', async () => {
    const { client, sent } = fakeClient();
    const { open, opened } = gate();
    let settled: Promise<unknown> = Promise.resolve();
    const answer = withDeadline(30, () => {
      settled = client.begin(async (tx) => {
        await tx.unsafe('UPDATE 1');
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

  it('refuse statements issued after the deadline, inside a transaction or not', async () => {
    const { client, sent } = fakeClient();
    const { open, opened } = gate();
    let late: Promise<unknown> = Promise.resolve();
    let tx: Promise<unknown> = Promise.resolve();
    const answer = withDeadline(30, () => {
      late = opened.then(() => client.unsafe('INSERT late'));
      // A BEGIN that only gets its connection after the deadline starts nothing.
      tx = opened.then(() => client.begin((t) => t.unsafe('INSERT never')));
      return Promise.all([late, tx]);
    });
    await expect(answer).rejects.toBeInstanceOf(DeadlineExceeded);
    open();
    await expect(late).rejects.toBeInstanceOf(DeadlineExceeded);
    await expect(tx).rejects.toBeInstanceOf(DeadlineExceeded);
    expect(sent).toEqual([]);
  });
});
