import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../scripts/topology/ports.js';
import type { Protocol } from '../client-worker.js';
import { tsxImport } from '../clients.js';
import { newRunId, sleep } from '../setup.js';

/** One server under test, started as its own process so its CPU time can be read from /proc. */
export interface Engine {
  id: EngineId;
  label: string;
  protocol: Protocol;
  /** Room the subscribers join (tenant-relative for Fluxo). */
  room: string;
  /** Whether subscribers authenticate with a JWT (Fluxo). */
  auth: boolean;
  /** `env` is added to the engine's own (a DATABASE_URL, NODE_OPTIONS with a hook); nothing else is passed on. */
  start(ctx: BenchContext, env?: Record<string, string>): Promise<RunningEngine>;
}

export type EngineId = 'fluxo' | 'fluxo-postgres' | 'fluxo-fanout-only' | 'socketio-ws' | 'socketio-uws' | 'uws-raw';

export interface BenchContext {
  secret: string;
  publishKey: string;
  tenant: string;
  payload: { pad: string };
}

/** A context of its own for a suite's run: a fresh tenant, events padded to ~`padBytes` + 10 bytes of data. */
export function benchContext(padBytes = 90): BenchContext {
  return {
    secret: 'bench-secret-that-is-long-enough-for-hs256!!',
    publishKey: 'bench-publish-key-0123456789',
    tenant: `bench-${newRunId()}`,
    payload: { pad: 'x'.repeat(padBytes) },
  };
}

export interface RunningEngine {
  pid: number;
  url: string;
  /**
   * Publishes `count` events in one request (Fluxo's full path: the publish API's `{events: [...]}`
   * form, one commit); resolves when the server answered.
   */
  publish(count: number): Promise<void>;
  stop(): Promise<void>;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Starts a server with exactly `env` (and PATH, HOME): nothing of the bench's own environment —
 * a DATABASE_URL or NODE_OPTIONS exported in the shell — reaches the engine under test.
 */
export async function launch(script: string, env: Record<string, string>, healthUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', tsxImport(), script], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${script} exited with ${child.exitCode}`);
    try {
      if ((await fetch(healthUrl)).ok) return child;
    } catch {}
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${script} did not become healthy`);
    }
    await sleep(100);
  }
}

export function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      const hard = setTimeout(() => child.kill('SIGKILL'), 3000);
      child.once('exit', () => {
        clearTimeout(hard);
        resolve();
      });
      child.kill('SIGTERM');
    });
}

async function post(url: string, body: unknown, bearer?: string): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`publish: HTTP ${res.status}`);
}

function fluxoEnv(ctx: BenchContext, port: number): Record<string, string> {
  return {
    NODE_ENV: 'development',
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    JWT_SECRET: ctx.secret,
    PUBLISH_API_KEY: ctx.publishKey,
    // Generous, but still on: every publish and handshake goes through the limiter.
    RATE_LIMITS: 'handshake=1000000/1,publish=1000000/1,subscribe=1000000/1',
    // Every bench socket is one user from one address or a few.
    MAX_SOCKETS_PER_USER: '1000000',
    MAX_SOCKETS_PER_IP: '1000000',
  };
}

/**
 * Engines that take publishes on a side port (see servers/event.ts): `{room, data, count}` posted
 * to SIDE_PORT, `/health` on PORT. Fluxo's fan-out-only node also needs its configuration and the
 * tenant; the baselines need nothing.
 */
export function sidePortEngine(id: EngineId, label: string, protocol: Protocol, script: string, fluxo = false): Engine {
  const room = fluxo ? 'tenant' : 'bench';
  return {
    id,
    label,
    protocol,
    room,
    auth: fluxo,
    async start(ctx, env = {}) {
      const [port, side] = [await freePort(), await freePort()];
      const url = `http://127.0.0.1:${port}`;
      const own = fluxo ? fluxoEnv(ctx, port) : { PORT: String(port) };
      const child = await launch(here(script), { ...own, ...env, SIDE_PORT: String(side) }, `${url}/health`);
      const body = { ...(fluxo ? { tenant: ctx.tenant } : {}), room, data: ctx.payload };
      return { pid: child.pid!, url, publish: (count) => post(`http://127.0.0.1:${side}/`, { ...body, count }), stop: stopper(child) };
    },
  };
}

/**
 * Fluxo's own server (server/main.ts), published to through its publish API. With `postgres` it
 * refuses to start without a DATABASE_URL in `env`: the figure is labelled Postgres, and a node
 * without one would silently measure embedded PGlite.
 */
function fluxoEngine(id: EngineId, label: string, postgres: boolean): Engine {
  return {
    id,
    label,
    protocol: 'socket.io',
    room: 'tenant',
    auth: true,
    async start(ctx, env = {}) {
      if (postgres && !env.DATABASE_URL) throw new Error(`${id}: no DATABASE_URL given`);
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const child = await launch(here('../../server/main.ts'), { ...fluxoEnv(ctx, port), ...env }, `${url}/health`);
      const one = { tenant: ctx.tenant, room: 'tenant', type: 'bench', data: ctx.payload };
      // Several events go as one `{events: [...]}` call: one commit for all of them, as a backend would send them.
      const publish = (count: number) =>
        post(`${url}/api/publish`, count === 1 ? one : { events: Array.from({ length: count }, () => one) }, ctx.publishKey);
      return { pid: child.pid!, url, publish, stop: stopper(child) };
    },
  };
}

const fullPath = (store: string) =>
  `Fluxo full path (auth, tenant rooms, limits, metrics; every event committed to ${store} before fan-out)`;

export const ENGINES: Record<EngineId, Engine> = {
  'fluxo-postgres': fluxoEngine('fluxo-postgres', fullPath('Postgres 15 at DATABASE_URL, the production setup,'), true),
  // Its id predates the Postgres engine: the committed results call the PGlite figure `fluxo`.
  fluxo: fluxoEngine('fluxo', fullPath('embedded PGlite, the development store,'), false),
  'fluxo-fanout-only': sidePortEngine(
    'fluxo-fanout-only',
    'Fluxo fan-out only (same node, events handed to Socket.IO without the event-log write)',
    'socket.io',
    'servers/fluxo-fanout-only.ts',
    true,
  ),
  'socketio-ws': sidePortEngine('socketio-ws', 'plain Socket.IO 4.8 on node:http + ws', 'socket.io', 'servers/socketio-ws.ts'),
  'socketio-uws': sidePortEngine('socketio-uws', 'bare Socket.IO 4.8 on uWS (attachApp)', 'socket.io', 'servers/socketio-uws.ts'),
  'uws-raw': sidePortEngine('uws-raw', 'raw uWS pub/sub, JSON protocol', 'raw', 'servers/uws-raw.ts'),
};

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

/** Servers running right now, so that an interrupt stops them too (a Fluxo node outlives its Redis). */
export class LiveServers {
  private readonly stops = new Set<() => Promise<void>>();

  /** Returns `stop` that also forgets the server. */
  track(stop: () => Promise<void>): () => Promise<void> {
    this.stops.add(stop);
    return async () => {
      this.stops.delete(stop);
      await stop();
    };
  }

  async stopAll(): Promise<void> {
    const all = [...this.stops];
    this.stops.clear();
    await Promise.allSettled(all.map((s) => s()));
  }
}

/**
 * Runs `cleanup` on Ctrl-C or SIGTERM before exiting: Postgres (started through pg_ctl) and temp
 * dirs would otherwise outlive the bench. Returns the function that removes the handlers again.
 */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  const handler = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping what the bench started…\n`);
    cleanup().finally(() => process.exit(signal === 'SIGTERM' ? 143 : 130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
