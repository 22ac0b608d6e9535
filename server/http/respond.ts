import type { ZodType } from 'zod';
import { ERRORS, type ErrorBody } from '../../shared/errors.js';
import { AppError } from '../errors.js';
import type { HttpRequest, HttpResponse } from '../transport/uws.js';
import { validate } from '../validate.js';

export { validate };

const JSON_TYPE: [string, string] = ['Content-Type', 'application/json; charset=utf-8'];

export function json(status: number, body: unknown, headers: [string, string][] = []): HttpResponse {
  return { status, headers: [JSON_TYPE, ['Cache-Control', 'no-store'], ...headers], body: JSON.stringify(body) };
}

export function errorResponse(body: ErrorBody): HttpResponse {
  const headers: [string, string][] = [];
  if (body.code === 'rate_limited' && body.retryAfterMs !== undefined)
    headers.push(['Retry-After', String(Math.max(1, Math.ceil(body.retryAfterMs / 1000)))]);
  return json(ERRORS[body.code].status, { error: body }, headers);
}

/** Parses and validates a JSON body; every failure is a typed 4xx. */
/** The JSON body of a request (415 unless it says application/json, 400 when it does not parse). */
export function readJson(req: HttpRequest): unknown {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('application/json')) throw new AppError('unsupported_media_type');
  try {
    return JSON.parse(req.body?.toString('utf8') || '');
  } catch {
    throw new AppError('invalid_json');
  }
}

export function readBody<T>(req: HttpRequest, schema: ZodType<T>): T {
  return validate(schema, readJson(req));
}

/** Query string as a plain object (last value wins), for schema validation. */
export function queryObject(q: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of q) out[k] = v;
  return out;
}
