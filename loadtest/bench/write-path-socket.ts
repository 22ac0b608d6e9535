import type { TransitionResult } from '../../shared/protocol.js';
import { LeanClient } from '../lean-client.js';
import { nextStage } from '../setup.js';
import { newHistogram, recordUs, summarize } from '../stats.js';
import { type LoadResult, type LoadSpec, type ProcessState, processStates, transitionRequest } from './write-path-load.js';

/** An ack of `process:transition`: the result, or the error's catalog code. */
type Ack = { data?: TransitionResult; error?: { code?: string; current?: ProcessState } };

/**
 * The write-path load over Socket.IO: `connections` sockets through nginx, each emitting
 * `process:transition` with an ack and the next one when it comes (one in flight per socket, as
 * autocannon keeps one request in flight per connection), on the same processes and in the same
 * modes as the HTTP load. Statuses are HTTP-like so the level is read the same way: `200` an ack
 * with data, `409` a version conflict, otherwise the error code (or `timeout`, `disconnected`).
 */
export async function runSocketTransitions(s: LoadSpec): Promise<LoadResult> {
  if (s.rate > 0) throw new Error('write-path over Socket.IO runs flat out only (--rate 0)');
  const clients = await Promise.all(
    Array.from({ length: s.connections }, (_, i) =>
      LeanClient.connect({
        url: s.url,
        token: s.tokens[i % s.tokens.length]!,
        ...(s.localAddresses?.length ? { localAddress: s.localAddresses[i % s.localAddresses.length]! } : {}),
      }),
    ),
  );
  const { known, adopt } = processStates(s.processes);
  const committedInRun: number[] = [];
  const statuses: Record<string, number> = {};
  const latency = newHistogram();
  let windowFrom = -1;
  let opened = -1;
  const started = performance.now();
  const endsAt = started + (s.warmupS + s.durationS) * 1000;
  const warmup = setTimeout(() => {
    opened = performance.now();
    windowFrom = committedInRun.length;
    s.onWindow();
  }, s.warmupS * 1000);
  const count = (status: string) => {
    if (opened >= 0) statuses[status] = (statuses[status] ?? 0) + 1;
  };
  const loop = async (c: LeanClient, i: number) => {
    const p = s.processes[i % s.processes.length]!;
    const state = known.get(p.id)!;
    while (performance.now() < endsAt) {
      const req = { processId: p.id, ...transitionRequest(s.mode, state) };
      const t0 = performance.now();
      const inWindow = opened >= 0;
      const ack = await c.request<Ack>('process:transition', req).catch(
        (err: Error): Ack => ({
          error: { code: err.message.startsWith('ack timeout') ? 'timeout' : 'disconnected' },
        }),
      );
      if (ack.data) {
        committedInRun.push(ack.data.event.id);
        adopt(ack.data.process);
        count('200');
        if (inWindow) recordUs(latency, (performance.now() - t0) * 1000);
      } else if (ack.error?.code === 'version_conflict') {
        if (ack.error.current) adopt(ack.error.current);
        count('409');
      } else {
        // invalid_transition: on a two-stage board the process already is where we asked it to go.
        if (ack.error?.code === 'invalid_transition') state.stage = nextStage(state.stage);
        count(ack.error?.code ?? 'no-ack');
        if (!c.connected) return;
      }
    }
  };
  try {
    await Promise.all(clients.map((c, i) => loop(c, i)));
  } finally {
    clearTimeout(warmup);
    for (const c of clients) c.close();
  }
  if (opened < 0) throw new Error('the load ended before its measured window opened');
  return {
    seconds: (performance.now() - opened) / 1000,
    statuses,
    latencyMs: summarize(latency),
    committed: committedInRun.slice(windowFrom),
    committedInRun,
  };
}
