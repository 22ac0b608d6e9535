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

/**
 * NODE_OPTIONS that CPU-profile a server into `dir` (a .cpuprofile per process, for Chrome DevTools
 * or speedscope). Node refuses --cpu-prof in NODE_OPTIONS, so an --import hook starts the profiler
 * through the inspector and writes it on exit; a main-thread inspector session answers
 * synchronously, which an exit handler needs.
 */
export function cpuProfileNodeOptions(dir: string): string {
  const hook = `Promise.all([import('node:inspector'),import('node:fs')]).then(([{Session},fs])=>{const s=new Session();s.connect();s.post('Profiler.enable');s.post('Profiler.start');process.on('exit',()=>s.post('Profiler.stop',(e,r)=>{if(!e)fs.writeFileSync(${JSON.stringify(dir)}+'/'+process.pid+'.cpuprofile',JSON.stringify(r.profile))}))})`;
  return `--import=data:text/javascript,${encodeURIComponent(hook)}`;
}
