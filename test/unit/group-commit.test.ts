import { describe, expect, it } from 'vitest';
import { GroupCommit, type Outcome } from '../../server/store/group-commit.js';

/** A commit function that records batches and is released by hand. */
function recorder() {
  const batches: number[][] = [];
  const release: (() => void)[] = [];
  const commit = (items: number[]) =>
    new Promise<Outcome<number>[]>((resolve) => {
      batches.push(items);
      release.push(() => resolve(items.map((n) => (n < 0 ? { ok: false, error: new Error(`bad ${n}`) } : { ok: true, value: n * 10 }))));
    });
  return { batches, release, commit };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('GroupCommit', () => {
  it('puts writes of one tick in one batch, and later ones in the next batch once it committed', async () => {
    const r = recorder();
    const g = new GroupCommit(r.commit);
    const first = [1, 2, 3].map((n) => g.submit(n));
    await tick();
    expect(r.batches).toEqual([[1, 2, 3]]);
    const later = [4, 5].map((n) => g.submit(n));
    await tick();
    // Still one batch in flight: 4 and 5 wait for it.
    expect(r.batches).toHaveLength(1);
    expect(g.waiting).toBe(2);
    r.release[0]!();
    expect(await Promise.all(first)).toEqual([10, 20, 30]);
    await tick();
    expect(r.batches).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    r.release[1]!();
    expect(await Promise.all(later)).toEqual([40, 50]);
    expect(g.stats).toEqual({ batches: 2, items: 5 });
  });

  it('settles each item with its own outcome, and every item when the commit throws', async () => {
    const r = recorder();
    const g = new GroupCommit(r.commit);
    const [a, b] = [g.submit(1), g.submit(-1)];
    await tick();
    r.release[0]!();
    await expect(a).resolves.toBe(10);
    await expect(b).rejects.toThrow('bad -1');

    const broken = new GroupCommit<number, number>(async () => {
      throw new Error('down');
    });
    const all = await Promise.allSettled([broken.submit(1), broken.submit(2)]);
    expect(all.map((s) => s.status === 'rejected' && (s.reason as Error).message)).toEqual(['down', 'down']);
  });

  it('caps batch size and batches in flight', async () => {
    const r = recorder();
    const g = new GroupCommit(r.commit, { maxBatch: 2, maxInFlight: 2 });
    const all = [1, 2, 3, 4, 5].map((n) => g.submit(n));
    await tick();
    expect(r.batches).toEqual([
      [1, 2],
      [3, 4],
    ]);
    r.release[0]!();
    await tick();
    expect(r.batches[2]).toEqual([5]);
    r.release[1]!();
    r.release[2]!();
    expect(await Promise.all(all)).toEqual([10, 20, 30, 40, 50]);
  });
});
