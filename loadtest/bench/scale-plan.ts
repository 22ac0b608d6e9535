import type { SocketGroup } from '../client-worker.js';

/**
 * The sizing of the `scale` suite, from the socket count alone, so that the same harness runs
 * 2,000 sockets in CI, 100,000 on a 2-core box and 1,000,000 on a bigger one. Pure: no I/O.
 *
 * Every process here may open at most `fdLimit` files (20,000 on these machines, `ulimit -Hn`),
 * and that, not memory, decides how many of each process there must be:
 * - a Fluxo node holds one fd per socket (plus Redis, Postgres, nginx keep-alive: `nodeReserve`);
 * - an nginx worker holds TWO per proxied socket (client side + upstream side);
 * - a client process holds one per socket;
 * - the kernel gives one (source address, destination) pair ~28,000 ephemeral ports
 *   (`ip_local_port_range` 32768–60999), and connect() slows down long before they run out.
 */
export interface ScaleLimits {
  /** Open files per process. @default 20_000 */
  fdLimit: number;
  /** Sockets one Fluxo node is given: room under fdLimit for its own connections. @default 15_000 */
  perNode: number;
  /**
   * Share of an nginx worker's socket capacity used on average: `listen … reuseport` lets the kernel
   * hash each connection to a worker, so workers are not filled evenly. @default 0.8
   */
  nginxFill: number;
  /** Files an nginx worker keeps for itself (listen sockets, logs, upstream keep-alive). @default 1_000 */
  nginxReserve: number;
  /** Sockets per client process. @default 12_500 */
  perClientProcess: number;
  /** Sockets per loopback source address: far below the ephemeral range, where connect() stays fast. @default 5_000 */
  perSource: number;
}

export const DEFAULT_LIMITS: ScaleLimits = {
  fdLimit: 20_000,
  perNode: 15_000,
  nginxFill: 0.8,
  nginxReserve: 1_000,
  perClientProcess: 12_500,
  perSource: 5_000,
};

/** Ephemeral ports of one (source, destination) pair: `ip_local_port_range` 32768–60999. */
export const EPHEMERAL_PORTS = 60_999 - 32_768 + 1;

export interface NginxSizing {
  /** `worker_processes`. */
  workers: number;
  /** `worker_connections`: client and upstream connections of one worker together. */
  workerConnections: number;
  /** `worker_rlimit_nofile`. */
  rlimitNofile: number;
  /** Sockets one worker can proxy at most (workerConnections / 2). */
  socketsPerWorker: number;
}

export interface ScalePlan {
  sockets: number;
  nodes: number;
  /** Sockets planned on each node: as even as the count allows. */
  perNode: number[];
  nginx: NginxSizing;
  clientProcesses: number;
  /** Source addresses (distinct /24s) behind each node. */
  sourcesPerNode: number;
  /** Sockets from the busiest source address, to nginx: must stay under EPHEMERAL_PORTS. */
  maxPerSource: number;
}

const ceilDiv = (a: number, b: number) => Math.ceil(a / b);

/** nginx for `sockets` proxied WebSockets: enough workers that none needs more than fdLimit files. */
export function nginxSizing(sockets: number, l: ScaleLimits = DEFAULT_LIMITS): NginxSizing {
  const workerConnections = l.fdLimit - l.nginxReserve;
  const socketsPerWorker = Math.floor(workerConnections / 2);
  const workers = Math.max(1, ceilDiv(sockets, Math.floor(socketsPerWorker * l.nginxFill)));
  return { workers, workerConnections, rlimitNofile: l.fdLimit, socketsPerWorker };
}

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

/** `n` split into `parts` shares differing by at most one, larger first. */
export function evenShares(n: number, parts: number): number[] {
  const base = Math.floor(n / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < n % parts ? 1 : 0));
}

/**
 * Nodes, nginx workers, client processes and source addresses for `sockets`. `nodes` (when given)
 * overrides the count, but never below what the file limit needs.
 */
export function planScale(sockets: number, opts: { nodes?: number; limits?: Partial<ScaleLimits> } = {}): ScalePlan {
  if (!Number.isInteger(sockets) || sockets < 1) throw new Error(`sockets: a positive integer, not ${sockets}`);
  const l = { ...DEFAULT_LIMITS, ...opts.limits };
  const needed = ceilDiv(sockets, l.perNode);
  if (opts.nodes !== undefined && opts.nodes < needed)
    throw new Error(
      `--nodes ${opts.nodes}: ${sockets} sockets need at least ${needed} nodes of ≤ ${l.perNode} sockets (file limit ${l.fdLimit})`,
    );
  const nodes = opts.nodes ?? needed;
  const perNode = evenShares(sockets, nodes);
  const sourcesPerNode = Math.max(1, ceilDiv(perNode[0]!, l.perSource));
  const maxPerSource = ceilDiv(perNode[0]!, sourcesPerNode);
  if (maxPerSource > EPHEMERAL_PORTS)
    throw new Error(`${maxPerSource} sockets from one source address exceed its ${EPHEMERAL_PORTS} ephemeral ports`);
  return {
    sockets,
    nodes,
    perNode,
    nginx: nginxSizing(sockets, l),
    clientProcesses: Math.max(2, ceilDiv(sockets, l.perClientProcess)),
    sourcesPerNode,
    maxPerSource,
  };
}

/**
 * The i-th loopback source address (0-based), each in a /24 of its own: 127.X.Y.1 with X from 1
 * and Y in 1..254. nginx's ip_hash hashes the first three octets, so each can land on another node;
 * 127.0.Y.1 is left to the other suites. 254 × 254 addresses: enough for 1,000,000 sockets.
 */
export function scaleSourceAddress(i: number): string {
  if (!Number.isInteger(i) || i < 0 || i >= 254 * 254) throw new Error(`source address index ${i} is not 0..${254 * 254 - 1}`);
  return `127.${1 + Math.floor(i / 254)}.${1 + (i % 254)}.1`;
}

/**
 * Every node's sockets spread evenly over its source addresses; the first `roomSize` sockets of each
 * node also subscribe to that node's own room (`nodeRoom[node]`).
 */
export function socketGroups(perNode: Map<string, { count: number; addresses: string[]; room: string }>, roomSize: number): SocketGroup[] {
  const groups: SocketGroup[] = [];
  for (const [node, { count, addresses, room }] of perNode) {
    const shares = evenShares(count, addresses.length);
    let inRoom = Math.min(roomSize, count);
    addresses.forEach((localAddress, k) => {
      const share = shares[k]!;
      const withRoom = Math.min(inRoom, share);
      inRoom -= withRoom;
      const tenant = { name: 'tenant', key: 'tenant' };
      if (withRoom > 0) groups.push({ node, localAddress, count: withRoom, rooms: [tenant, { name: room, key: node }] });
      if (share - withRoom > 0) groups.push({ node, localAddress, count: share - withRoom, rooms: [tenant] });
    });
  }
  return groups;
}

/**
 * Splits every group over `processes` client processes, so each process ramps over every node and
 * address at once (and a process's share of any group differs from another's by at most one).
 */
export function groupsPerProcess(groups: readonly SocketGroup[], processes: number): SocketGroup[][] {
  const out: SocketGroup[][] = Array.from({ length: processes }, () => []);
  let offset = 0;
  for (const g of groups) {
    const shares = evenShares(g.count, processes);
    // Rotated, so that the processes that get the extra socket differ from group to group.
    shares.forEach((n, i) => {
      if (n > 0) out[(i + offset) % processes]!.push({ ...g, count: n });
    });
    offset += g.count % processes;
  }
  return out;
}

/** Sockets per node as planned against as measured: the largest relative deviation from the plan. */
export function spreadDeviation(planned: Record<string, number>, actual: Record<string, number>): number {
  let worst = 0;
  for (const [node, n] of Object.entries(planned)) {
    if (n === 0) continue;
    worst = Math.max(worst, Math.abs((actual[node] ?? 0) - n) / n);
  }
  return worst;
}
