import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { sleep } from '../setup.js';
import { tsxImport } from '../stats.js';
import type { Protocol } from './client-worker.js';

/** One server under test, started as its own process so its CPU time can be read from /proc. */
export interface Engine {
  id: EngineId;
  label: string;
  protocol: Protocol;
  /** Room the subscribers join (tenant-relative for Fluxo). */
  room: string;
  /** Whether subscribers authenticate with a JWT (Fluxo). */
  auth: boolean;
  start(ctx: BenchContext): Promise<RunningEngine>;
}

export type EngineId = 'fluxo' | 'fluxo-fanout-only' | 'socketio-ws' | 'socketio-uws' | 'uws-raw';

export interface BenchContext {
  secret: string;
  publishKey: string;
  tenant: string;
  payload: { pad: string };
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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export async function launch(script: string, env: Record<string, string>, healthUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', tsxImport(), script], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
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

/** The baselines share one shape: script, publish `{room, data, count}` on SIDE_PORT, `/health`. */
function baseline(id: EngineId, label: string, protocol: Protocol, script: string): Engine {
  return {
    id,
    label,
    protocol,
    room: 'bench',
    auth: false,
    async start(ctx) {
      const [port, side] = [await freePort(), await freePort()];
      const url = `http://127.0.0.1:${port}`;
      const child = await launch(here(script), { PORT: String(port), SIDE_PORT: String(side) }, `${url}/health`);
      return {
        pid: child.pid!,
        url,
        publish: (count) => post(`http://127.0.0.1:${side}/`, { room: 'bench', data: ctx.payload, count }),
        stop: stopper(child),
      };
    },
  };
}

export const ENGINES: Record<EngineId, Engine> = {
  fluxo: {
    id: 'fluxo',
    label: 'Fluxo full path (auth, tenant rooms, limits, metrics; every event committed to PGlite before fan-out)',
    protocol: 'socket.io',
    room: 'tenant',
    auth: true,
    async start(ctx) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const child = await launch(fileURLToPath(new URL('server/main.ts', `file://${repoRoot}`)), fluxoEnv(ctx, port), `${url}/health`);
      const one = { tenant: ctx.tenant, room: 'tenant', type: 'bench', data: ctx.payload };
      // Several events go as one `{events: [...]}` call: one commit for all of them, as a backend would send them.
      const publish = (count: number) =>
        post(`${url}/api/publish`, count === 1 ? one : { events: Array.from({ length: count }, () => one) }, ctx.publishKey);
      return { pid: child.pid!, url, publish, stop: stopper(child) };
    },
  },
  'fluxo-fanout-only': {
    id: 'fluxo-fanout-only',
    label: 'Fluxo fan-out only (same node, events handed to Socket.IO without the event-log write)',
    protocol: 'socket.io',
    room: 'tenant',
    auth: true,
    async start(ctx) {
      const [port, side] = [await freePort(), await freePort()];
      const url = `http://127.0.0.1:${port}`;
      const child = await launch(
        here('servers/fluxo-fanout-only.ts'),
        { ...fluxoEnv(ctx, port), SIDE_PORT: String(side) },
        `${url}/health`,
      );
      const body = { tenant: ctx.tenant, room: 'tenant', data: ctx.payload };
      return { pid: child.pid!, url, publish: (count) => post(`http://127.0.0.1:${side}/`, { ...body, count }), stop: stopper(child) };
    },
  },
  'socketio-ws': baseline('socketio-ws', 'plain Socket.IO 4.8 on node:http + ws', 'socket.io', 'servers/socketio-ws.ts'),
  'socketio-uws': baseline('socketio-uws', 'bare Socket.IO 4.8 on uWS (attachApp)', 'socket.io', 'servers/socketio-uws.ts'),
  'uws-raw': baseline('uws-raw', 'raw uWS pub/sub, JSON protocol', 'raw', 'servers/uws-raw.ts'),
};

/** utime + stime of a process, in microseconds, from /proc/<pid>/stat. */
export function cpuMicros(pid: number, clockTicks = 100): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command name start at field 3 (state): utime is field 14, stime field 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / clockTicks;
}
