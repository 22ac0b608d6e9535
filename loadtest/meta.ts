import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** What made a result and what it measured: the envelope of every `npm run loadtest` JSON. */
export interface RunMeta {
  tool: {
    name: 'fluxo-loadtest';
    /** The kit ships with Fluxo: Fluxo's package version and the checkout's commit. */
    version: string;
    commit: string;
    /** The load generator underneath (HTTP scenarios: autocannon). */
    engine: string | null;
    node: string;
  };
  target: {
    url: string;
    /** The node that answered `/health` (NODE_ID); behind a load balancer, one of them. */
    node: string | null;
  };
  /** ISO 8601, when the measured phase started and ended (set-up excluded). */
  startedAt: string;
  finishedAt: string;
}

export interface Threshold {
  /** What is checked, e.g. "missing events". */
  name: string;
  /** The condition, e.g. "= 0" or "≤ 50 ms". */
  condition: string;
  actual: string;
  ok: boolean;
}

const require = createRequire(import.meta.url);

/** The checkout's commit, or "unknown" outside a git checkout. */
export function gitSha(): string {
  try {
    return execSync('git rev-parse HEAD', { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

function versionOf(pkgJson: string): string {
  return (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
}

export function toolInfo(engine: 'autocannon' | null): RunMeta['tool'] {
  return {
    name: 'fluxo-loadtest',
    version: versionOf(fileURLToPath(new URL('../package.json', import.meta.url))),
    commit: gitSha(),
    engine: engine ? `autocannon ${versionOf(require.resolve('autocannon/package.json'))}` : null,
    node: process.version,
  };
}

/** The target's node id from `/health` (null when it does not say). */
export async function targetInfo(url: string): Promise<RunMeta['target']> {
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/health`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { node?: unknown };
    return { url, node: typeof body.node === 'string' ? body.node : null };
  } catch {
    return { url, node: null };
  }
}
