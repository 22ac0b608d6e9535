/**
 * Screens a parsed JSON value (an HTTP body, a socket payload) in ONE iterative walk: no recursion
 * anywhere, because a client can send `[[[[…]]]]` ten thousand levels deep in 20 KB, and any
 * recursive walker (JSON.stringify included) then throws RangeError — outside a try, that kills
 * the process. The walk stops at the first finding.
 */

/** Deepest nesting of arrays and objects any input may have (the error catalog's payload_too_deep says it too). */
export const MAX_JSON_DEPTH = 32;

/** Keys that reach an object's prototype when assigned, or shadow it when looked up. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export interface ScreenLimits {
  /** Deepest nesting of arrays and objects accepted (the top-level value is depth 1). */
  maxDepth: number;
  /** Largest size accepted, in bytes of its JSON text (estimated: string escapes not counted). */
  maxBytes?: number;
}

export type ScreenFinding =
  | { kind: 'too_deep'; depth: number }
  | { kind: 'too_large'; bytes: number }
  | { kind: 'forbidden_key'; path: string }
  | { kind: 'nul'; path: string }
  | { kind: 'lone_surrogate'; path: string };

interface Frame {
  value: unknown;
  depth: number;
  parent: Frame | null;
  key: string;
}

function pathOf(frame: Frame | null, key?: string): string {
  const parts: string[] = key === undefined ? [] : [key];
  for (let f = frame; f?.parent; f = f.parent) parts.push(f.key);
  return parts.reverse().join('.');
}

/**
 * A UTF-16 surrogate without its pair: JSON.parse lets `"\ud800"` through, Postgres refuses it in
 * json/jsonb (and it was a 500 with the SQL logged). String.prototype.isWellFormed is ES2024.
 */
export const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const textEncoder = new TextEncoder();
/** UTF-8 length without allocating for the usual all-ASCII case. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return textEncoder.encode(s).length;
  return s.length;
}

/**
 * The first problem of `value`, or null: nesting deeper than `maxDepth`, a JSON size over
 * `maxBytes`, a key in FORBIDDEN_KEYS, or U+0000 or a lone surrogate in a string or key (Postgres
 * cannot store either).
 * Binary attachments (Buffer, typed arrays) count their length and are not walked.
 */
export function screenJson(value: unknown, limits: ScreenLimits): ScreenFinding | null {
  const maxBytes = limits.maxBytes ?? Number.POSITIVE_INFINITY;
  let bytes = 0;
  const stack: Frame[] = [{ value, depth: 1, parent: null, key: '' }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const v = frame.value;
    if (typeof v === 'string') {
      if (v.includes('\0')) return { kind: 'nul', path: pathOf(frame) };
      if (LONE_SURROGATE.test(v)) return { kind: 'lone_surrogate', path: pathOf(frame) };
      bytes += utf8Length(v) + 2;
    } else if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') {
      bytes += String(v).length;
    } else if (v === null || v === undefined || typeof v !== 'object') {
      bytes += 4;
    } else if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
      bytes += v.byteLength;
    } else {
      if (frame.depth > limits.maxDepth) return { kind: 'too_deep', depth: frame.depth };
      bytes += 2;
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) {
          stack.push({ value: v[i], depth: frame.depth + 1, parent: frame, key: String(i) });
          bytes += 1;
        }
      } else {
        for (const key of Object.keys(v)) {
          if (FORBIDDEN_KEYS.has(key)) return { kind: 'forbidden_key', path: pathOf(frame, key) };
          if (key.includes('\0')) return { kind: 'nul', path: pathOf(frame, key) };
          if (LONE_SURROGATE.test(key)) return { kind: 'lone_surrogate', path: pathOf(frame, key) };
          bytes += utf8Length(key) + 4;
          stack.push({ value: (v as Record<string, unknown>)[key], depth: frame.depth + 1, parent: frame, key });
        }
      }
    }
    if (bytes > maxBytes) return { kind: 'too_large', bytes };
  }
  return null;
}
