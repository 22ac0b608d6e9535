import { describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { isConnectionError, toStoreError } from '../../server/store/errors.js';
import { monthStart, monthsBefore, partitionName, partitionRange } from '../../server/store/partitions.js';
import { decodeCursor, encodeCursor } from '../../server/store/rows.js';

const withCode = (code: string) => Object.assign(new Error(code), { code });

describe('store error mapping', () => {
  it('treats unreachable or shutting-down servers as unavailable', () => {
    for (const code of ['ECONNREFUSED', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', '08006', '57P01']) {
      expect(isConnectionError(withCode(code))).toBe(true);
    }
    // drizzle wraps driver errors
    expect(isConnectionError(new Error('Failed query', { cause: withCode('ECONNRESET') }))).toBe(true);
    const mapped = toStoreError(withCode('ECONNREFUSED'));
    expect(mapped).toBeInstanceOf(AppError);
    expect((mapped as AppError).code).toBe('store_unavailable');
  });

  it('treats a server that cannot take writes (read-only, disk or memory full) as unavailable, not as a query error', () => {
    for (const code of ['25006', '53100', '53200', '58030']) {
      expect(isConnectionError(withCode(code))).toBe(false); // a replica read is not moved to the primary for it
      expect(toStoreError(new Error('Failed query', { cause: withCode(code) }))).toMatchObject({ code: 'store_unavailable' });
    }
  });

  it('leaves query errors alone', () => {
    for (const code of ['23505', '42P01', '40001']) expect(isConnectionError(withCode(code))).toBe(false);
    const err = withCode('23505');
    expect(toStoreError(err)).toBe(err);
    const app = new AppError('not_found');
    expect(toStoreError(app)).toBe(app);
  });
});

describe('process list cursor', () => {
  it('round-trips and refuses garbage', () => {
    const key = { createdAt: '2026-11-01T10:00:00.123Z', id: 'abc' };
    expect(decodeCursor(encodeCursor(key))).toEqual(key);
    for (const bad of ['garbage', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["x","y"]').toString('base64url')]) {
      expect(() => decodeCursor(bad)).toThrow(AppError);
    }
  });
});

describe('partition months', () => {
  it('names and ranges months in UTC', () => {
    const start = monthStart(new Date('2026-12-31T23:30:00-05:00'));
    expect(start.toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(partitionName(start)).toBe('events_2027_01');
    expect(partitionRange('events_2026_12')).toEqual({ from: new Date('2026-12-01T00:00:00Z'), to: new Date('2027-01-01T00:00:00Z') });
    expect(partitionRange('events_default')).toBeNull();
    expect(partitionRange('events_2026_13')).toBeNull();
  });

  it('subtracts calendar months, clamping the day', () => {
    expect(monthsBefore(new Date('2026-05-31T12:00:00Z'), 3).toISOString()).toBe('2026-02-28T12:00:00.000Z');
    expect(monthsBefore(new Date('2026-01-15T00:00:00Z'), 2).toISOString()).toBe('2025-11-15T00:00:00.000Z');
  });
});
