import { describe, expect, it } from 'vitest';
import { anchorLevel, countedBytes, rampLevels } from '../../loadtest/bench/connections.js';
import { bytesPerSocket } from '../../loadtest/bench/rss.js';

describe('connections bench: memory per socket', () => {
  it('takes the least-squares slope of RSS over sockets, so one jumpy reading bends it instead of making it', () => {
    const line = [0, 1000, 2000, 3000].map((n) => ({ sockets: n, rssBytes: 50e6 + n * 6000 }));
    expect(bytesPerSocket(line)).toBeCloseTo(6000, 6);
    // A 2 MB jump at one level (a table doubling) moves a four-point fit by 200 B/socket; two points would move 2 KB.
    const jumpy = line.map((p) => (p.sockets === 1000 ? { ...p, rssBytes: p.rssBytes + 2e6 } : p));
    expect(bytesPerSocket(jumpy)).toBeCloseTo(5800, 6);
  });

  it('gives no slope from one point or from one socket count', () => {
    expect(bytesPerSocket([{ sockets: 10, rssBytes: 1 }])).toBeNull();
    expect(
      bytesPerSocket([
        { sockets: 10, rssBytes: 1 },
        { sockets: 10, rssBytes: 5 },
      ]),
    ).toBeNull();
  });

  it('counts the heap slope when RSS grew slower than the heap (start-up pages reused)', () => {
    expect(countedBytes(4700, 9100)).toBe(9100);
    expect(countedBytes(6100, 5800)).toBe(6100);
    expect(countedBytes(null, 5800)).toBe(5800);
    expect(countedBytes(6100, null)).toBe(6100);
  });

  it('ramps from a fifth of the first count through every reported count', () => {
    expect(anchorLevel([10_000, 15_000])).toBe(2000);
    const levels = rampLevels([10_000, 15_000], 3);
    expect(levels).toEqual([2000, 6333, 10_000, 10_667, 15_000]);
    expect(rampLevels([1000], 0)).toEqual([200, 1000]);
  });
});
