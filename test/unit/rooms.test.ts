import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERRORS, type ErrorCode } from '../../shared/errors.js';
import { internalRoom, parseRoom } from '../../shared/rooms.js';

describe('room names', () => {
  it('accepts the four kinds relative to the tenant', () => {
    expect(parseRoom('tenant')).toEqual({ kind: 'tenant', id: '', name: 'tenant' });
    expect(parseRoom('workflow:w1')).toMatchObject({ kind: 'workflow', id: 'w1' });
    expect(parseRoom('process:6f1c-aa')).toMatchObject({ kind: 'process', id: '6f1c-aa' });
    expect(parseRoom('user:ada@acme')).toMatchObject({ kind: 'user', id: 'ada@acme' });
  });

  it('refuses anything that could name another tenant or escape the namespace', () => {
    for (const bad of [
      't:globex:tenant',
      'tenant:x',
      'process:',
      'process:a:b',
      'workflow:../x',
      'user: ',
      'rk:abc',
      '',
      42,
      null,
      'x'.repeat(200),
    ]) {
      expect(parseRoom(bad), String(bad)).toBeNull();
    }
    expect(internalRoom('acme', 'tenant')).toBe('t:acme:tenant');
  });
});

describe('error catalog', () => {
  it('documents every code in the README table with its exact HTTP status, retry flag and message', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    // Rows of the "Error codes" table: | `code` | status | yes/no | message (+ a note) |
    const rows = readme
      .split('\n')
      .filter((line) => /^\| `[a-z_]+` \| \d{3} \|/.test(line))
      .map((line) => line.split('|').map((cell) => cell.trim()));
    expect(rows.map((cells) => cells[1])).toEqual(ERROR_CODES.map((code) => `\`${code}\``));
    for (const [, cell, status, retry, meaning] of rows) {
      const code = cell!.slice(1, -1) as ErrorCode;
      expect([status, retry], code).toEqual([String(ERRORS[code].status), ERRORS[code].retryable ? 'yes' : 'no']);
      expect(meaning!.startsWith(ERRORS[code].message), code).toBe(true);
    }
  });
});
