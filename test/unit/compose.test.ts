import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../server/config/index.js';
import { configSchema } from '../../server/config/schema.js';

const ROOT = join(import.meta.dirname, '../..');
const COMPOSE = join(ROOT, 'compose.yaml');

interface Service {
  build?: unknown;
  environment?: Record<string, string | number | boolean> | string[];
  profiles?: string[];
}

/** `${VAR:-default}` → default (what compose uses when VAR is unset). */
function substituteDefaults(value: string): string {
  return value.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1');
}

function envOf(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  const pairs = Array.isArray(env) ? env.map((kv) => kv.split('=', 2) as [string, string]) : Object.entries(env);
  return Object.fromEntries(pairs.map(([k, v]) => [k, substituteDefaults(String(v ?? ''))]));
}

const compose = parse(readFileSync(COMPOSE, 'utf8'), { merge: true }) as { services: Record<string, Service> };
const nodes = Object.entries(compose.services).filter(([name]) => /^fluxo-\d+$/.test(name));

// That docker-compose itself accepts the file (a process): test/integration/compose-config.test.ts.
describe('compose.yaml', () => {
  it('runs three Fluxo nodes behind nginx with Redis, a Postgres primary and a replica', () => {
    expect(nodes.map(([n]) => n)).toEqual(['fluxo-1', 'fluxo-2', 'fluxo-3']);
    for (const s of ['nginx', 'redis', 'postgres', 'postgres-replica', 'migrate', 'prometheus', 'grafana']) {
      expect(compose.services, s).toHaveProperty(s);
    }
    expect(compose.services.prometheus?.profiles).toEqual(['monitoring']);
  });

  it('sets only variables Fluxo knows, everything a node needs, and values the schema accepts', () => {
    const known = new Set(Object.keys(configSchema.shape));
    const required = Object.entries(configSchema.shape)
      .filter(([, field]) => !(field as { safeParse(v: unknown): { success: boolean } }).safeParse(undefined).success)
      .map(([name]) => name);
    const ids = new Set<string>();
    for (const [name, service] of nodes) {
      const env = envOf(service);
      for (const key of Object.keys(env)) expect(known.has(key), `${name} sets ${key}, which Fluxo does not read`).toBe(true);
      for (const key of required) expect(env, `${name} lacks required ${key}`).toHaveProperty(key);
      // What a node of a cluster cannot work without.
      for (const key of ['NODE_ID', 'DATABASE_URL', 'DATABASE_REPLICA_URLS', 'REDIS_URL', 'TRUST_PROXY', 'NODE_ENV', 'JWT_SECRET']) {
        expect(env, `${name} lacks ${key}`).toHaveProperty(key);
      }
      // The operator supplies the secret; with it, the node's config is valid.
      const config = loadConfig({ ...env, JWT_SECRET: 'x'.repeat(32) });
      expect(config.env).toBe('production');
      ids.add(config.nodeId);
    }
    expect(ids.size).toBe(nodes.length);
  });

  it('refuses to start a production node when no secret is given (no weak default in the file)', () => {
    const [, first] = nodes[0] ?? [];
    if (!first) throw new Error('no fluxo node in compose.yaml');
    expect(() => loadConfig(envOf(first))).toThrow(/JWT_SECRET or JWT_JWKS_URL/);
  });
});
