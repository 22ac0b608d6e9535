import { randomUUID } from 'node:crypto';
import type { Request } from 'autocannon';
import type { Process, TransitionResult } from '../../shared/protocol.js';
import { type DriveOptions, drive } from '../http.js';
import { nextStage } from '../setup.js';
import { type LatencySummary, summarize } from '../stats.js';

/**
 * The load side of the write-path suite: autocannon clients bound to loopback source addresses
 * (nginx ip_hash routes by the client's /24) and the transitions they commit.
 */

/**
 * `blind`: just the target stage; `rmw`: with the version last seen as expectedVersion; `keyed`:
 * blind with a fresh requestId per request, as the SDK sends every transition (the claim and the
 * stored result are then part of each write).
 */
export type WriteMode = 'blind' | 'rmw' | 'keyed';

/** What the load needs to know of a process: Fluxo's answers and the baselines' carry at least this. */
export type ProcessState = Pick<Process, 'id' | 'stage' | 'version'>;

export interface LoadSpec extends Pick<DriveOptions, 'url' | 'connections' | 'durationS' | 'rate' | 'localAddresses'> {
  /** One per connection, cycled. */
  tokens: string[];
  /** Processes, shared round robin by the connections. */
  processes: ProcessState[];
  /** Load before the measured window (JIT, pools, caches warm up). */
  warmupS: number;
  mode: WriteMode;
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
 * POST /api/processes/:id/transition flat out (or at `rate`), one autocannon run (see drive()).
 * Each connection moves its process todo ⇄ doing, learning the stage (and version) from each
 * answer, so one failed request does not leave it asking for a transition the workflow refuses.
 * `rmw` sends the last version it saw as expectedVersion; a 409 carries the current state, which it
 * adopts. Requests in flight when the run ends may still commit: the caller sees them in the
 * database (and at the subscribers) but not in `committed`.
 */
export async function runTransitions(s: LoadSpec): Promise<LoadResult> {
  const committedInRun: number[] = [];
  let windowFrom = -1;
  const { known, adopt } = processStates(s.processes);
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
          body: JSON.stringify(transitionRequest(s.mode, state)),
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
  // onResponse (above) runs just before drive() counts the same response.
  const load = await drive({
    ...s,
    requests: perClient,
    timed: (status) => status === 200,
    onWindow: () => {
      windowFrom = committedInRun.length;
      s.onWindow();
    },
  });
  const errors = Object.values(load.errorsByKind).reduce((a, b) => a + b, 0);
  return {
    seconds: load.seconds,
    statuses: errors ? { ...load.statuses, errors } : load.statuses,
    latencyMs: summarize(load.latency),
    committed: committedInRun.slice(windowFrom),
    committedInRun,
  };
}

/** What the load knows of each process (the newest state any answer showed), and how it learns. */
export function processStates(processes: ProcessState[]) {
  const known = new Map<string, { stage: string; version: number }>(processes.map((p) => [p.id, { stage: p.stage, version: p.version }]));
  const adopt = (p: ProcessState) => {
    const k = known.get(p.id);
    // Several connections may share a process: keep the newest state any of them saw.
    if (k && p.version >= k.version) Object.assign(k, { stage: p.stage, version: p.version });
  };
  return { known, adopt };
}

/** The next transition of a process in `state`, as `mode` sends it. */
export function transitionRequest(mode: WriteMode, state: { stage: string; version: number }) {
  const to = nextStage(state.stage);
  if (mode === 'rmw') return { to, expectedVersion: state.version };
  if (mode === 'keyed') return { to, requestId: randomUUID() };
  return { to };
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
