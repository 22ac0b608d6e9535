import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, configTableRows, loadConfig } from '../../server/config/index.js';
import { configSchema } from '../../server/config/schema.js';

describe('config', () => {
  it('runs with no variable set: embedded mode, port 8080, migrations on, dev login on', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.databaseUrl).toBeUndefined();
    expect(c.migrateOnStart).toBe(true);
    expect(c.devLogin).toBe(true);
    expect(c.maxPayloadBytes).toBe(65536);
  });

  it('turns migrations off by default with DATABASE_URL', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' }).migrateOnStart).toBe(false);
  });

  it('names the variable and what was expected when a value is wrong', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ JWT_SECRET: 'short' })).toThrow(/JWT_SECRET: at least 32 characters/);
    expect(() => loadConfig({ JWT_ALGORITHMS: 'none' })).toThrow(/JWT_ALGORITHMS/);
    expect(() => loadConfig({ COOKIE_SECURE: 'maybe' })).toThrow(/COOKIE_SECURE/);
    expect(() => loadConfig({ RATE_LIMITS: 'http:wrte=5/1' })).toThrow(/RATE_LIMITS: "http:wrte=5\/1" names unknown event "http:wrte"/);
    expect(loadConfig({ RATE_LIMITS: 'http:write=5/1' }).rateLimits).toBe('http:write=5/1');
  });

  it('requires a secret or JWKS in production and refuses DEV_LOGIN there', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET or JWT_JWKS_URL/);
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), DEV_LOGIN: 'true' })).toThrow(/DEV_LOGIN/);
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) }).devLogin).toBe(false);
  });

  it('offers demo sign-in by default only in the embedded mode with the built-in development secret', () => {
    expect(loadConfig({}).devLogin).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).devLogin).toBe(true);
    expect(loadConfig({ JWT_SECRET: 'x'.repeat(32) }).devLogin).toBe(false);
    expect(loadConfig({ JWT_JWKS_URL: 'https://idp.example.com/jwks' }).devLogin).toBe(false);
    expect(loadConfig({ DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' }).devLogin).toBe(false);
    expect(loadConfig({ DEV_LOGIN: 'false' }).devLogin).toBe(false);
    expect(loadConfig({ DEV_LOGIN: 'true' }).devLogin).toBe(true);
  });

  it('refuses DEV_LOGIN=true with a configured secret, a JWKS or a DATABASE_URL', () => {
    expect(() => loadConfig({ DEV_LOGIN: 'true', JWT_SECRET: 'x'.repeat(32) })).toThrow(/DEV_LOGIN: cannot be on with JWT_SECRET/);
    expect(() => loadConfig({ DEV_LOGIN: 'true', JWT_JWKS_URL: 'https://idp.example.com/jwks' })).toThrow(/DEV_LOGIN.*JWT_JWKS_URL/);
    expect(() => loadConfig({ DEV_LOGIN: 'true', DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' })).toThrow(/DEV_LOGIN.*DATABASE_URL/);
    expect(() => loadConfig({ DEV_LOGIN: 'true', JWT_SECRET: 'x'.repeat(32) })).toThrow(ConfigError);
  });

  it('bounds presence lists at 1,000 users by default, 0 turning them off, and refuses a negative bound', () => {
    expect(loadConfig({}).presenceMaxConnections).toBe(1000);
    expect(loadConfig({ PRESENCE_MAX_CONNECTIONS: '0' }).presenceMaxConnections).toBe(0);
    expect(() => loadConfig({ PRESENCE_MAX_CONNECTIONS: '-1' })).toThrow(/PRESENCE_MAX_CONNECTIONS/);
  });

  it('parses lists', () => {
    const c = loadConfig({ ALLOWED_ORIGINS: 'https://a.example, https://b.example', DATABASE_REPLICA_URLS: '' });
    expect(c.allowedOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(c.replicaUrls).toEqual([]);
  });

  it('has a README row for every variable, with its description', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const row of configTableRows()) {
      expect(readme, `README lacks ${row.name}`).toContain(`| \`${row.name}\` |`);
      expect(readme).toContain(row.description);
    }
    // And no row for a variable the schema no longer has: the table's variables are the schema's, in order.
    const table = readme.slice(readme.indexOf('| Variable | Type | Default | Description |'));
    const documented = table
      .slice(0, table.indexOf('\n\n'))
      .split('\n')
      .slice(2)
      .map((line) => /^\| `([A-Z0-9_]+)` \|/.exec(line)?.[1]);
    expect(documented).toEqual(Object.keys(configSchema.shape));
  });
});
