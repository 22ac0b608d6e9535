import net from 'node:net';
import autocannon, { type Client, type Request } from 'autocannon';
import { nodeBehind } from '../../scripts/topology/source-address.js';
import type { FluxoEvent, Process, TransitionResult } from '../../shared/protocol.js';
import { LeanClient } from '../lean-client.js';
import { nextStage, sourceAddresses } from '../setup.js';
import { type LatencySummary, newHistogram, nowMs, recordUs, summarize } from '../stats.js';

/**
 * The load side of the write-path suite: autocannon clients bound to loopback source addresses
 * (nginx ip_hash routes by the client's /24), the transitions they commit, and subscribers that
 * check every committed transition was fanned out to every node.
 */

/**
 * autocannon connects with `net.connect(port, host)` and has no option for a source address. Each
 * client's `_connect` (also used on reconnect) is wrapped so that, during that synchronous call,
 * `net.connect` binds `localAddress`. Only this client's connects are affected.
 */
export function bindClient(client: Client, localAddress: string): void {
  const c = client as unknown as { _connect(): void };
  const original = Object.getPrototypeOf(c)._connect as () => void;
  c._connect = function (this: unknown) {
    const connect = net.connect;
    net.connect = ((port: number, host: string) => connect({ port, host, localAddress })) as typeof net.connect;
    try {
      original.call(this);
    } finally {
      net.connect = connect;
    }
  };
}

/**
 * Source addresses in distinct /24s, the same number behind each node, so that connections spread
 * evenly however ip_hash happens to map them. Probes candidates until each node has `perNode`.
 */
export async function balancedAddresses(url: string, nodeIds: string[], perNode: number): Promise<Map<string, string[]>> {
  const byNode = new Map<string, string[]>(nodeIds.map((n) => [n, []]));
  for (const addr of sourceAddresses(254)) {
    const node = await nodeBehind(url, addr);
    const list = byNode.get(node);
    if (list && list.length < perNode) list.push(addr);
    if ([...byNode.values()].every((l) => l.length >= perNode)) return byNode;
  }
  throw new Error(`ip_hash: could not find ${perNode} source addresses per node over 254 /24s: ${JSON.stringify([...byNode])}`);
}

export type WriteMode = 'blind' | 'rmw';

/** What the load needs to know of a process: Fluxo's answers and the baselines' carry at least this. */
export type ProcessState = Pick<Process, 'id' | 'stage' | 'version'>;

export interface LoadSpec {
  url: string;
  /** One per connection, cycled. */
  tokens: string[];
  /** Processes, shared round robin by the connections. */
  processes: ProcessState[];
  /** One per connection, cycled; empty: the default source address. */
  localAddresses: string[];
  connections: number;
  /** Load before the measured window (JIT, pools, caches warm up). */
  warmupS: number;
  /** The measured window. */
  durationS: number;
  /** Offered transitions/s over all connections; 0 = flat out. */
  rate: number;
  mode: WriteMode;
  /** Called as the window opens (the caller samples CPU and counters). */
  onWindow(): void;
}

export interface LoadResult {
  /** Length of the measured window. */
  seconds: number;
  /** Responses in the window by status, plus `errors` (socket errors and timeouts). */
  statuses: Record<string, number>;
  /** Of the 200s in the window. */
  latencyMs: LatencySummary;
  /** Event ids of the transitions acked with 200 in the window. */
  committed: number[];
  /** … and over the whole run, warm-up included. */
  committedInRun: number[];
}

/**
 * POST /api/processes/:id/transition flat out (or at `rate`), one autocannon run whose first
 * `warmupS` are not counted: stopping and restarting autocannon would leave transitions in flight
 * that the next run does not know of. Each connection moves its process todo ⇄ doing, learning the
 * stage (and version) from each answer, so one failed request does not leave it asking for a
 * transition the workflow refuses. `rmw` sends the last version it saw as expectedVersion; a 409
 * carries the current state, which it adopts. Requests in flight when the run ends may still
 * commit: the caller sees them in the database (and at the subscribers) but not in `committed`.
 */
export async function runTransitions(s: LoadSpec): Promise<LoadResult> {
  const committedInRun: number[] = [];
  let windowFrom = -1;
  const known = new Map<string, { stage: string; version: number }>(s.processes.map((p) => [p.id, { stage: p.stage, version: p.version }]));
  const adopt = (p: ProcessState) => {
    const k = known.get(p.id);
    // Several connections may share a process: keep the newest state any of them saw.
    if (k && p.version >= k.version) Object.assign(k, { stage: p.stage, version: p.version });
  };
  const perClient = (i: number): Request[] => {
    const p = s.processes[i % s.processes.length]!;
    const state = known.get(p.id)!;
    return [
      {
        method: 'POST',
        path: `/api/processes/${p.id}/transition`,
        headers: { authorization: `Bearer ${s.tokens[i % s.tokens.length]}`, 'content-type': 'application/json' },
        setupRequest: (req) => ({
          ...req,
          body: JSON.stringify(
            s.mode === 'rmw' ? { to: nextStage(state.stage), expectedVersion: state.version } : { to: nextStage(state.stage) },
          ),
        }),
        onResponse: (status, body) => {
          if (status === 200) {
            const r = (JSON.parse(body) as { data: TransitionResult }).data;
            committedInRun.push(r.event.id);
            adopt(r.process);
          } else if (status === 409) {
            const current = (JSON.parse(body) as { error: { current?: ProcessState } }).error.current;
            if (current) adopt(current);
          } else if (status === 422) {
            // invalid_transition: on a two-stage board the process already is where we asked it to go.
            state.stage = nextStage(state.stage);
          }
        },
      },
    ];
  };
  let next = 0;
  const instance = autocannon({
    url: s.url,
    connections: s.connections,
    duration: s.warmupS + s.durationS,
    ...(s.rate > 0 ? { overallRate: s.rate } : {}),
    requests: perClient(0),
    setupClient: (client: Client) => {
      const i = next++;
      client.setRequests(perClient(i));
      if (s.localAddresses.length) bindClient(client, s.localAddresses[i % s.localAddresses.length]!);
    },
  });
  const hist = newHistogram();
  const statuses: Record<string, number> = {};
  const opened = performance.now() + s.warmupS * 1000;
  const timer = setTimeout(() => {
    windowFrom = committedInRun.length;
    s.onWindow();
  }, s.warmupS * 1000);
  // onResponse (above) runs just before this event for the same response.
  instance.on('response', (_client, status, _bytes, ms) => {
    if (windowFrom < 0) return;
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status === 200) recordUs(hist, ms * 1000);
  });
  instance.on('reqError', () => {
    if (windowFrom >= 0) statuses.errors = (statuses.errors ?? 0) + 1;
  });
  try {
    await instance;
  } finally {
    clearTimeout(timer);
  }
  if (windowFrom < 0) throw new Error('the load ended before its measured window opened');
  return {
    seconds: (performance.now() - opened) / 1000,
    statuses,
    latencyMs: summarize(hist),
    committed: committedInRun.slice(windowFrom),
    committedInRun,
  };
}

/** One socket on one node in the tenant room, keeping the id of every transition it receives. */
export interface Subscriber {
  node: string;
  ids: Set<number>;
  /** Commit (the event's `at`) to receipt, from when `measure()` was called. */
  lag(): LatencySummary;
  measure(): void;
  close(): void;
}

export async function subscribe(node: string, url: string, token: string): Promise<Subscriber> {
  const client = await LeanClient.connect({ url, token });
  const ids = new Set<number>();
  let hist = newHistogram();
  client.onEvent = (name, args) => {
    const e = args[0] as FluxoEvent;
    if (name !== 'event' || e.type !== 'process.transitioned') return;
    // The event reaches the tenant room once; a repeat would be a bug the set hides, so count it.
    ids.add(e.id);
    recordUs(hist, (nowMs() - Date.parse(e.at)) * 1000);
  };
  const ack = await client.request<{ error?: { message: string } }>('subscribe', { room: 'tenant' });
  if (ack?.error) {
    client.close();
    throw new Error(`subscribe on ${node}: ${ack.error.message}`);
  }
  return {
    node,
    ids,
    lag: () => summarize(hist),
    measure: () => {
      hist = newHistogram();
    },
    close: () => client.close(),
  };
}

/** Committed ids a subscriber has not received. */
export function missingFrom(sub: Subscriber, committed: number[]): number {
  let n = 0;
  for (const id of committed) if (!sub.ids.has(id)) n++;
  return n;
}

/** Waits until every subscriber holds every committed id, or `timeoutMs` passed. */
export async function drain(subs: Subscriber[], committed: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && subs.some((s) => missingFrom(s, committed) > 0)) await new Promise((r) => setTimeout(r, 100));
}

/** Transition requests a node answered, by status, from its /metrics (nginx hides /metrics). */
export async function transitionsServed(nodeUrl: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', nodeUrl))).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('http_request_duration_seconds_count{') && line.includes('route="/api/processes/:id/transition"'))
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}
