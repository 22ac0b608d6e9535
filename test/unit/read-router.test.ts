import { describe, expect, it } from 'vitest';
import { type Db, silentLogger } from '../../server/store/db.js';
import { ReadRouter } from '../../server/store/read-router.js';

// Stand-ins: the router only hands them to the read it runs, which tells them apart.
const primary = { role: 'primary' } as unknown as Db;
const replica = { role: 'replica' } as unknown as Db;

/** A driver error as drizzle wraps it. */
const failed = (code: string, message: string) => new Error('Failed query', { cause: Object.assign(new Error(message), { code }) });

/** One read through the router; the replica throws `replicaError` if given. Returns where it ran, in order. */
async function readOnce(router: ReadRouter, replicaError?: Error): Promise<{ ran: string[]; result: unknown }> {
  const ran: string[] = [];
  const result = await router.read(undefined, async (db) => {
    ran.push(db === primary ? 'primary' : 'replica');
    if (db === replica && replicaError) throw replicaError;
    return 'rows';
  });
  return { ran, result };
}

describe('replica reads', () => {
  it('a read the replica cancelled to replay WAL (40001, 40P01) is read on the primary, and the replica stays in use', async () => {
    const router = new ReadRouter(primary, [replica], {}, silentLogger);
    for (const code of ['40001', '40P01']) {
      expect(await readOnce(router, failed(code, 'canceling statement due to conflict with recovery'))).toEqual({
        ran: ['replica', 'primary'],
        result: 'rows',
      });
    }
    expect((await readOnce(router)).ran).toEqual(['replica']);
    expect(router.stats).toEqual({ primaryReads: 2, replicaReads: 3, replicaFallbacks: 2 });
    router.close();
  });

  it('an unreachable replica is skipped for a while; a query error is the caller’s, not retried', async () => {
    const router = new ReadRouter(primary, [replica], {}, silentLogger);
    expect((await readOnce(router, failed('ECONNREFUSED', 'connect ECONNREFUSED'))).ran).toEqual(['replica', 'primary']);
    expect((await readOnce(router)).ran).toEqual(['primary']);
    router.close();

    const other = new ReadRouter(primary, [replica], {}, silentLogger);
    await expect(readOnce(other, failed('42703', 'column "x" does not exist'))).rejects.toThrow('Failed query');
    other.close();
  });
});
