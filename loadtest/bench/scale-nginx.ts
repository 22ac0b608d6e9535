import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nginxConfig } from '../../scripts/topology/cluster.js';
import { freePort } from '../../scripts/topology/ports.js';
import { sleep } from '../setup.js';
import type { NginxSizing } from './scale-plan.js';

/**
 * nginx for the `scale` suite: the harness's config (nginx/nginx.conf as shipped, loopback
 * upstreams) with the worker count and file limits the socket count needs, and `reuseport` so that
 * the kernel spreads accepted connections over the workers — without it one worker may take most
 * of them and run out of files while the others idle.
 */
export function scaleNginxConfig(base: string, s: NginxSizing): string {
  const swap = (text: string, from: RegExp, to: string) => {
    if (!from.test(text)) throw new Error(`nginx config: nothing matches ${from}`);
    return text.replace(from, to);
  };
  let conf = swap(base, /^worker_processes \d+;$/m, `worker_processes ${s.workers};\nworker_rlimit_nofile ${s.rlimitNofile};`);
  conf = swap(conf, /worker_connections \d+;/, `worker_connections ${s.workerConnections};`);
  conf = swap(conf, /listen (127\.0\.0\.1:\d+);/, 'listen $1 reuseport;');
  // An access-log line per closed socket is 100,000 writes at teardown, for nothing the suite reads.
  return swap(conf, /access_log \S+;/, 'access_log off;');
}

export interface ScaleNginx {
  url: string;
  /** The master's pid (its workers are its children). */
  pid: number;
  stop(): Promise<void>;
}

export async function startScaleNginx(dir: string, upstreams: string[], sizing: NginxSizing): Promise<ScaleNginx> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, scaleNginxConfig(nginxConfig({ dir, port, upstreams }), sizing));
  const proc = spawn(process.env.NGINX_BIN ?? 'nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGQUIT');
    await Promise.race([exited, sleep(5000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited (${proc.exitCode}): ${stderr.trim()}`);
    if (
      await fetch(`${url}/health`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (i > 200) {
      await stop();
      throw new Error(`nginx did not answer on ${url}: ${stderr.trim()}`);
    }
    await sleep(50);
  }
  return { url, pid: proc.pid!, stop };
}
