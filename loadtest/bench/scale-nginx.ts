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
