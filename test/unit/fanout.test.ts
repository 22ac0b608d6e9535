import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../server/ops/metrics.js';
import type { FluxoServer } from '../../server/realtime/deps.js';
import { createFanout } from '../../server/realtime/fanout.js';
import type { FluxoEvent } from '../../shared/protocol.js';
import { internalRoom } from '../../shared/rooms.js';

const event = (id: number, rooms = ['tenant']): FluxoEvent => ({
  id,
  type: 'custom',
  rooms,
  offsets: rooms.map(() => id),
  processId: null,
  workflowId: null,
  fromStage: null,
  toStage: null,
  version: null,
  actor: 'u1',
  at: new Date().toISOString(),
  data: {},
});

/** A Socket.IO server that records local emits and adapter messages, and lets a test deliver one. */
function fakeIo() {
  const local: [room: string, id: number][] = [];
  const relays: [name: string, args: unknown[]][] = [];
  const listeners = new Map<string, (...args: unknown[]) => void>();
  const io = {
    local: { to: (room: string) => ({ emit: (_name: string, e: FluxoEvent) => local.push([room, e.id]) }) },
    of: () => ({
      on: (name: string, fn: (...args: unknown[]) => void) => listeners.set(name, fn),
      serverSideEmit: (name: string, ...args: unknown[]) => relays.push([name, args]),
    }),
  } as unknown as FluxoServer;
  return { io, local, relays, deliver: (name: string, ...args: unknown[]) => listeners.get(name)?.(...args) };
}

const nextMacrotask = () => new Promise<void>((r) => setImmediate(r));

describe('fan-out with one adapter message', () => {
  it('relays the events handed in one turn as one adapter message, in order, after emitting them locally', async () => {
    const { io, local, relays } = fakeIo();
    const fanout = createFanout(io, createMetrics('n1'), { relay: 'all' });
    fanout('acme', event(1, ['process:p1', 'tenant']));
    fanout('acme', event(2));
    fanout('beta', event(3));
    expect(local).toEqual([]); // never from inside the caller's turn
    await nextMacrotask();
    expect(local).toEqual([
      [internalRoom('acme', 'process:p1'), 1],
      [internalRoom('acme', 'tenant'), 1],
      [internalRoom('acme', 'tenant'), 2],
      [internalRoom('beta', 'tenant'), 3],
    ]);
    expect(relays.map(([name, [batch]]) => [name, (batch as [string, FluxoEvent][]).map(([t, e]) => [t, e.id])])).toEqual([
      [
        'fluxo:events',
        [
          ['acme', 1],
          ['acme', 2],
          ['beta', 3],
        ],
      ],
    ]);
    fanout('acme', event(4));
    await nextMacrotask();
    expect(relays).toHaveLength(2);
  });

  it("emits another node's relayed events to this node's rooms, and still hears the one-event message of the previous version", () => {
    const { io, local, relays, deliver } = fakeIo();
    createFanout(io, createMetrics('n1'), { relay: 'tenant' });
    deliver('fluxo:events', [['acme', event(5)], ['acme', event(6, ['workflow:w1'])], ['bad'], null]);
    deliver('fluxo:event', 'acme', event(7));
    deliver('fluxo:events', 'not a list');
    expect(local).toEqual([
      [internalRoom('acme', 'tenant'), 5],
      [internalRoom('acme', 'workflow:w1'), 6],
      [internalRoom('acme', 'tenant'), 7],
    ]);
    expect(relays).toEqual([]); // a relayed event is not relayed again
  });

  it('relays one message per tenant of the turn, each in the order handed, for the sharded adapter', async () => {
    const { io, local, relays } = fakeIo();
    const fanout = createFanout(io, createMetrics('n1'), { relay: 'tenant' });
    fanout('acme', event(1));
    fanout('beta', event(2));
    fanout('acme', event(3, ['process:p1']));
    await nextMacrotask();
    expect(local.map(([, id]) => id)).toEqual([1, 2, 3]);
    expect(relays.map(([name, [batch]]) => [name, (batch as [string, FluxoEvent][]).map(([t, e]) => [t, e.id])])).toEqual([
      [
        'fluxo:events',
        [
          ['acme', 1],
          ['acme', 3],
        ],
      ],
      ['fluxo:events', [['beta', 2]]],
    ]);
  });
});
