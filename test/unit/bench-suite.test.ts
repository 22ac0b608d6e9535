import { describe, expect, it } from 'vitest';
import { check, medianRow } from '../../loadtest/bench/suite.js';

describe('bench suite helpers', () => {
  it('takes the median of each numeric field over rounds, sums the named ones, keeps the rest', () => {
    const rows = [
      { engine: 'a', round: 1, rate: 10, cpu: 2 as number | null, errors: 1 },
      { engine: 'a', round: 2, rate: 30, cpu: null, errors: 2 },
      { engine: 'a', round: 3, rate: 20, cpu: 4, errors: 0 },
    ];
    expect(medianRow(rows, ['errors'])).toEqual({ engine: 'a', round: 0, rate: 20, cpu: null, errors: 3 });
    expect(medianRow([rows[0]!, rows[2]!]).cpu).toBe(2);
    expect(() => medianRow([])).toThrow('no rounds');
  });

  it('reports a missed target with its gap', () => {
    expect(check('x', 'ratio', 2.6, 1.3)).toMatchObject({ met: false, gap: '100 % over' });
    expect(check('x', 'rate', 3, 4, { atLeast: true })).toMatchObject({ met: false, gap: '25 % short' });
    expect(check('x', 'rate', 5, 4, { atLeast: true }).met).toBe(true);
  });
});
