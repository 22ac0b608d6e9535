import type { ZodType } from 'zod';
import { MAX_JSON_DEPTH, type ScreenFinding, screenJson } from '../shared/json-screen.js';
import { AppError } from './errors.js';

/** The typed error for what screenJson found. */
export function screenError(finding: ScreenFinding, maxBytes?: number): AppError {
  switch (finding.kind) {
    case 'too_deep':
      return new AppError('payload_too_deep');
    case 'too_large':
      return new AppError('payload_too_large', maxBytes === undefined ? undefined : `Messages are limited to ${maxBytes} bytes.`);
    case 'forbidden_key':
      return new AppError('validation_failed', undefined, {
        issues: [{ path: finding.path, message: 'keys __proto__, constructor and prototype are not allowed' }],
      });
    case 'lone_surrogate':
      return new AppError('validation_failed', undefined, {
        issues: [{ path: finding.path, message: 'text must be well-formed Unicode (a lone surrogate)' }],
      });
    case 'nul':
      // Postgres cannot store U+0000 in text or jsonb: caught here it is a 400 naming the field.
      return new AppError('validation_failed', undefined, { issues: [{ path: finding.path, message: 'text may not contain U+0000' }] });
  }
}

/** Client input (HTTP body or query, socket payload) screened, then through its schema; else a typed 4xx. */
export function validate<T>(schema: ZodType<T>, value: unknown): T {
  const finding = screenJson(value, { maxDepth: MAX_JSON_DEPTH });
  if (finding) throw screenError(finding);
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new AppError('validation_failed', undefined, {
      issues: r.error.issues.slice(0, 10).map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return r.data;
}
