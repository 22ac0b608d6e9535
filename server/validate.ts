import type { ZodType } from 'zod';
import { AppError } from './errors.js';

/**
 * Path of the first string (or key) holding U+0000, which Postgres cannot store in text or jsonb:
 * caught here it is a 400 naming the field, later it would be a failed write.
 */
export function nulPath(value: unknown, path: string[] = [], depth = 0): string | null {
  if (typeof value === 'string') return value.includes('\0') ? path.join('.') : null;
  if (depth > 32 || value === null || typeof value !== 'object') return null;
  for (const [k, v] of Object.entries(value)) {
    if (k.includes('\0')) return [...path, k].join('.');
    const found = nulPath(v, [...path, k], depth + 1);
    if (found !== null) return found;
  }
  return null;
}

/** Client input (HTTP body or query, socket payload) through its schema, or `validation_failed` with the issues. */
export function validate<T>(schema: ZodType<T>, value: unknown): T {
  const nul = nulPath(value);
  if (nul !== null) {
    throw new AppError('validation_failed', undefined, { issues: [{ path: nul, message: 'text may not contain U+0000' }] });
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new AppError('validation_failed', undefined, {
      issues: r.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return r.data;
}
