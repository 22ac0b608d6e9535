import type { BenchContext, Engine, RunningEngine } from './engines.js';

/**
 * Starts an engine with extra environment variables (a GC hook in NODE_OPTIONS, a DATABASE_URL):
 * engines.ts passes the bench's own environment on to the server it spawns, so they are set for
 * the duration of the start only. Suites run one at a time, so nothing else spawns meanwhile.
 */
export async function startWithEnv(engine: Engine, ctx: BenchContext, env: Record<string, string>): Promise<RunningEngine> {
  const before = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await engine.start(ctx);
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
