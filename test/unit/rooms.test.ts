import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERRORS } from '../../shared/errors.js';
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
  it('gives every code an HTTP status and a message, and documents each in README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const code of ERROR_CODES) {
      expect(ERRORS[code].status).toBeGreaterThanOrEqual(400);
      expect(ERRORS[code].message.length).toBeGreaterThan(0);
      expect(readme, `README lacks error code ${code}`).toContain(`\`${code}\``);
    }
  });
});
