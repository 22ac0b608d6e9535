/**
 * `npm run smoke:dist`: builds the production image's stages from the Dockerfile on this machine
 * (scripts/dockerfile-local.ts; Docker does not run here) and runs the final stage the way
 * `docker run` would — its CMD, as an unprivileged user, with its ENV, from a tree that holds only
 * the compiled dist/ and the production dependencies — then checks it over the network:
 *   /health and the Dockerfile's HEALTHCHECK command, the dashboard page, a token from the image's
 *   own token tool, a workflow, a process and a transition whose event arrives over Socket.IO, and a
 *   drain on the Dockerfile's STOPSIGNAL that exits 0 (after which the HEALTHCHECK fails).
 * Migrations are applied first by compose.yaml's `migrate` command, run in the image, into an
 * embedded PGlite directory the node then opens with MIGRATE_ON_START=false.
 * The client side (socket.io-client, a dev dependency) runs here, from the development tree.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { io } from 'socket.io-client';
import { parse as parseYaml } from 'yaml';
import type { FluxoEvent, Process, TransitionResult, Workflow } from '../shared/protocol.js';
import { buildStages, IMAGE_PATH, type Stage } from './dockerfile-local.js';

const ROOT = resolve(import.meta.dirname, '..');
const HELP = `Usage: npm run smoke:dist [-- --keep]

Builds the Dockerfile's stages in a temporary folder (no Docker needed) and runs the image's
CMD with production dependencies only: health, token, transition, event over Socket.IO, drain.
  --keep     keep the temporary folder (stages, PGlite data) and print where it is
  -h, --help
`;

const NETWORK_ENV = /^(https?_proxy|no_proxy|NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR)$/i;

/** Whom `USER` maps to on this machine: that user if it exists, else nobody (the image's `node` is uid 1000). */
function localUser(name: string): { uid: number; gid: number; name: string } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name) return { uid: Number(uid), gid: Number(gid), name };
  }
  return { uid: 65534, gid: 65534, name: 'nobody' };
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Every process started in the image, so that a failed run leaves none behind. */
const started = new Set<ChildProcess>();

/** A process started in the image: its WORKDIR, its ENV plus `env`, as its USER when we are root. */
function inImage(stage: Stage, argv: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<Ran> } {
  const [cmd, ...args] = argv;
  const user = stage.user && process.getuid?.() === 0 ? localUser(stage.user) : undefined;
  const child = spawn(cmd!, args, {
    cwd: join(stage.root, stage.workdir),
    env: { PATH: IMAGE_PATH, HOME: '/nonexistent', ...stage.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  started.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<Ran>((res, rej) => {
    child.once('error', rej);
    child.once('exit', (code) => {
      started.delete(child);
      res({ code, stdout, stderr });
    });
  });
  return { child, done };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

async function api<T>(url: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** No package the lockfile marks dev-only is in the image: the server cannot lean on one by accident. */
async function checkNoDevPackages(image: Stage): Promise<number> {
  const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const app = join(image.root, image.workdir);
  // Node also looks in every folder above for node_modules: one there would hide a missing dependency.
  for (let dir = dirname(app); dir !== dirname(dir); dir = dirname(dir)) {
    check(!existsSync(join(dir, 'node_modules')), `${dir}/node_modules exists: the image's tree is not alone`);
  }
  const devOnly = Object.entries(lock.packages).filter(([path, p]) => path && p.dev);
  const present = devOnly.filter(([path]) => existsSync(join(app, path))).map(([path]) => path);
  check(present.length === 0, `dev-only packages in the image: ${present.slice(0, 10).join(', ')}`);
  check(!existsSync(join(app, 'node_modules/tsx')), 'tsx is in the image');
  return devOnly.length;
}

/** Every file patches/ changes carries its added lines in the image (patch-package ran there). */
async function checkPatched(image: Stage): Promise<string[]> {
  const app = join(image.root, image.workdir);
  const checked: string[] = [];
  for (const name of ['postgres+3.4.9.patch']) {
    const patch = await readFile(join(ROOT, 'patches', name), 'utf8');
    for (const part of patch.split(/^diff --git /m).slice(1)) {
      const file = /^\+\+\+ b\/(\S+)/m.exec(part)?.[1];
      const added = part
        .split('\n')
        .filter((l) => l.startsWith('+') && !l.startsWith('+++') && l.trim().length > 20)
        .map((l) => l.slice(1));
      if (!file || added.length === 0) continue;
      const text = await readFile(join(app, file), 'utf8');
      const missing = added.filter((l) => !text.includes(l));
      check(missing.length === 0, `${file} in the image lacks ${missing.length} line(s) of patches/${name}`);
      checked.push(file);
    }
  }
  return checked;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { keep: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const t0 = Date.now();
  const secs = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const say = (line: string) => console.log(`smoke:dist [${secs()}] ${line}`);
  const out = await mkdtemp(join(tmpdir(), 'fluxo-image-'));
  try {
    const stages = await buildStages({
      context: ROOT,
      out,
      runEnv: {
        // This machine's way to the registry (its proxy and CA), as `docker build` takes the proxy
        // variables of the machine that builds.
        ...Object.fromEntries(Object.entries(process.env).filter((kv): kv is [string, string] => NETWORK_ENV.test(kv[0]) && !!kv[1])),
        // The npm cache the preceding `npm ci` filled: the image's installs need not fetch again.
        npm_config_prefer_offline: 'true',
        npm_config_update_notifier: 'false',
      },
      log: (l) => say(l),
    });
    const image = stages.at(-1)!;
    check(!!image.cmd && !!image.healthcheck && !!image.user, 'the final stage needs CMD, HEALTHCHECK and USER');
    const runAs = image.user && process.getuid?.() === 0 ? localUser(image.user).name : 'this user (not root: no switch)';
    const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime ?? 'unknown';
    say(`image built: ${image.root}; stand-in for ${image.from}: node ${process.version}, glibc ${glibc}`);
    say(`CMD ${JSON.stringify(image.cmd)} as ${image.user} (here: ${runAs})`);
    const devOnly = await checkNoDevPackages(image);
    say(`none of the ${devOnly} dev-only packages of package-lock.json is in the image`);
    say(`patched in the image: ${(await checkPatched(image)).join(', ')}`);

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const data = join(out, 'pglite');
    const env: Record<string, string> = {
      PORT: String(port),
      HOST: '127.0.0.1',
      JWT_SECRET: randomBytes(32).toString('base64url'),
      PGLITE_DIR: data,
      MIGRATE_ON_START: 'false',
      NODE_ID: 'smoke-dist',
      LOG_LEVEL: 'info',
      SHUTDOWN_GRACE_MS: '3000',
    };
    await mkdir(data);
    if (image.user && process.getuid?.() === 0) {
      const u = localUser(image.user);
      await chown(data, u.uid, u.gid);
    }

    const compose = parseYaml(await readFile(join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, { command?: string[] }>;
    };
    const migrateCmd = compose.services.migrate?.command;
    check(Array.isArray(migrateCmd), 'compose.yaml: the migrate service has no command list');
    const migrated = await within(inImage(image, migrateCmd!, env).done, 60_000, 'migrate');
    check(migrated.code === 0, `migrate (${migrateCmd!.join(' ')}) exited ${migrated.code}: ${migrated.stderr}${migrated.stdout}`);
    check(/applied 0001_init\.sql/.test(migrated.stdout), `migrate did not apply 0001_init.sql: ${migrated.stdout}`);
    say(`compose's migrate command: ${migrated.stdout.trim().split('\n').join(' / ')}`);

    const server = inImage(image, image.cmd!, env);
    const exited = server.done;
    const health = async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.status;
    const deadline = Date.now() + 30_000;
    while ((await health()) !== 200) {
      const early = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(r, 100))]);
      if (early) throw new Error(`the server exited ${early.code} before /health answered: ${early.stderr}${early.stdout}`);
      if (Date.now() > deadline) throw new Error(`/health did not answer 200 within 30 s: ${server.child.pid}`);
    }
    say(`CMD ${image.cmd!.join(' ')} answers /health on ${url}`);
    if (image.user && process.getuid?.() === 0) {
      // Not root inside: the uid the kernel reports for the server process.
      const uid = /^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${server.child.pid}/status`, 'utf8'))?.[1];
      check(uid === String(localUser(image.user).uid), `the server runs as uid ${uid}`);
      say(`the server process runs as uid ${uid}`);
    }
    const healthcheck = () => within(inImage(image, image.healthcheck!.cmd, env).done, 10_000, 'HEALTHCHECK');
    const healthy = await healthcheck();
    check(healthy.code === 0, `HEALTHCHECK exited ${healthy.code} on a live node: ${healthy.stderr}`);
    say('the HEALTHCHECK command exits 0');

    const page = await (await fetch(`${url}/`)).text();
    check(page.includes('assets/app.js') && !page.includes('has not been built'), 'GET / is not the built dashboard');
    const bundle = await fetch(`${url}/assets/app.js`);
    check(bundle.status === 200 && (await bundle.arrayBuffer()).byteLength > 10_000, `GET /assets/app.js: ${bundle.status}`);
    say('the dashboard (dist/web/dist) is served');

    const minted = await inImage(image, ['node', 'dist/scripts/token.js', '--sub', 'smoke', '--tid', 'smoke', '--role', 'admin'], env).done;
    check(minted.code === 0 && /^ey[\w-]+\.[\w-]+\.[\w-]+$/.test(minted.stdout.trim()), `token tool: ${minted.code} ${minted.stderr}`);
    const token = minted.stdout.trim();
    const wf = await api<{ data: Workflow }>(url, 'POST', '/api/workflows', token, {
      name: 'Smoke',
      stages: ['todo', 'doing'],
      transitions: { todo: ['doing'] },
    });
    check(wf.status === 201, `POST /api/workflows: ${wf.status} ${JSON.stringify(wf.body)}`);
    const proc = await api<{ data: Process }>(url, 'POST', '/api/processes', token, { workflowId: wf.body.data.id, title: 'Card' });
    check(proc.status === 201, `POST /api/processes: ${proc.status} ${JSON.stringify(proc.body)}`);
    say(`with a token from dist/scripts/token.js: workflow ${wf.body.data.id} and process ${proc.body.data.id} created`);

    const socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token } });
    try {
      await within(
        new Promise<void>((res, rej) => {
          socket.once('connect', () => res());
          socket.once('connect_error', rej);
        }),
        10_000,
        'Socket.IO connect',
      );
      const events: FluxoEvent[] = [];
      socket.on('event', (e: FluxoEvent) => events.push(e));
      const sub = await within(
        socket.emitWithAck('subscribe', { room: 'tenant' }) as Promise<{ data?: unknown; error?: unknown }>,
        5000,
        'subscribe',
      );
      check(!!sub.data, `subscribe: ${JSON.stringify(sub)}`);
      const moved = await api<{ data: TransitionResult }>(url, 'POST', `/api/processes/${proc.body.data.id}/transition`, token, {
        to: 'doing',
        expectedVersion: proc.body.data.version,
      });
      check(moved.status === 200, `transition: ${moved.status} ${JSON.stringify(moved.body)}`);
      const id = moved.body.data.event.id;
      await within(
        new Promise<void>((res) => {
          const seen = () => events.some((e) => e.id === id && e.type === 'process.transitioned' && e.toStage === 'doing');
          if (seen()) res();
          else socket.on('event', () => seen() && res());
        }),
        5000,
        `event ${id} over Socket.IO`,
      );
      say(`the transition's event ${id} (process.transitioned → doing) arrived over Socket.IO`);

      const told = new Promise((res) => socket.once('server:reconnect', res));
      const stopAt = Date.now();
      server.child.kill(image.stopSignal as NodeJS.Signals);
      await within(told, 5000, 'server:reconnect after the stop signal');
      const end = await within(exited, 3000 + 2000, `exit after ${image.stopSignal}`);
      check(end.code === 0, `exit code ${end.code} after ${image.stopSignal}: ${end.stderr}`);
      const logs = end.stdout
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg?: string });
      check(
        logs.some((l) => l.msg === 'stopped'),
        'no "stopped" log line',
      );
      check(!end.stdout.includes(token), 'the token was logged');
      say(`${image.stopSignal}: clients told to reconnect, drained, exit 0 in ${Date.now() - stopAt} ms`);
    } finally {
      socket.close();
    }
    const dead = await healthcheck();
    check(dead.code !== 0, 'the HEALTHCHECK command exits 0 with no node running');
    say(`the HEALTHCHECK command exits ${dead.code} once the node is gone`);
    console.log(`smoke:dist: passed in ${secs()}`);
  } finally {
    for (const child of started) child.kill('SIGKILL');
    if (values.keep) console.log(`smoke:dist: kept ${out}`);
    else await rm(out, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`smoke:dist: FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
