import { describe, expect, it, vi } from 'vitest';
import { MemoryPresence } from '../../server/presence/memory.js';
import type { PresenceChange, PresenceStore } from '../../server/presence/presence.js';
import { PresenceDiffs, type PresenceTarget } from '../../server/realtime/presence-diffs.js';
import type { PresenceDiff, PresenceMember } from '../../shared/protocol.js';

const member = (userId: string, connections = 1, state: PresenceMember['state'] = null): PresenceMember => ({
  userId,
  name: null,
  connections,
  state,
});
const none: PresenceChange = { joins: [], leaves: [], updates: [] };

/** Records every diff sent, in order; `sent` resolves with the next one. */
function fakeTarget() {
  const sent: { room: string; diff: PresenceDiff }[] = [];
  let waiting: ((d: PresenceDiff) => void) | null = null;
  const target: PresenceTarget = {
    to: (room) => ({
      emit: (_event, diff) => {
        sent.push({ room, diff });
        waiting?.(diff);
      },
    }),
  };
  const next = () =>
    new Promise<PresenceDiff>((resolve) => {
      waiting = resolve;
    });
  return { target, sent, next };
}

/** A store whose answer to `members` is set by the test: how the users stand "now" (the room holds just them). */
function storeSaying(now: PresenceMember[]): Pick<PresenceStore, 'members'> {
  return {
    members: async (_room, ids) => ({
      count: now.length,
      connections: now.reduce((n, m) => n + m.connections, 0),
      members: new Map(now.filter((m) => ids.includes(m.userId)).map((m) => [m.userId, m])),
      crossedOver: false,
    }),
  };
}

/** No bound that these tests reach. */
const MAX = 1000;

/** A client's member list, kept as the SDK keeps it (shared/sdk/client.ts). */
function watcher() {
  const members = new Map<string, PresenceMember>();
  return {
    members,
    apply(diff: PresenceDiff) {
      for (const userId of diff.leaves) members.delete(userId);
      for (const m of [...diff.joins, ...diff.updates]) members.set(m.userId, m);
    },
  };
}

describe('presence diff coalescing', () => {
  it('sends one message per room per window, each user as the store has it when the window closes', async () => {
    const { target, sent } = fakeTarget();
    const diffs = new PresenceDiffs(target, storeSaying([member('ada', 2, { status: 'editing' }), member('cy', 1), member('dan', 3)]), MAX);
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('ada')] });
    diffs.push('t:a:tenant', 'tenant', { ...none, updates: [member('ada', 2)] });
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('eve')] });
    diffs.push('t:a:tenant', 'tenant', { ...none, leaves: ['eve'] });
    diffs.push('t:a:tenant', 'tenant', { ...none, leaves: ['bob'] });
    diffs.push('t:a:tenant', 'tenant', { ...none, updates: [member('cy', 1)] });
    // This node saw dan's connection go; another node's arrived meanwhile: the store says he is here.
    diffs.push('t:a:tenant', 'tenant', { ...none, leaves: ['dan'] });
    diffs.push('t:a:workflow:w', 'workflow:w', { ...none, joins: [member('ada')] });
    await diffs.flush();
    expect(sent).toHaveLength(2);
    expect(sent.find((s) => s.room === 't:a:tenant')?.diff).toEqual({
      room: 'tenant',
      // ada joined and changed state within the window: one join with the store's view. eve came and
      // went: a leave all the same (another node may have shown her meanwhile; harmless otherwise).
      joins: [member('ada', 2, { status: 'editing' })],
      leaves: ['eve', 'bob'],
      updates: [member('cy', 1), member('dan', 3)],
      count: 3,
      truncated: false,
    });
    expect(sent.find((s) => s.room === 't:a:workflow:w')?.diff).toEqual({
      room: 'workflow:w',
      joins: [member('ada', 2, { status: 'editing' })],
      leaves: [],
      updates: [],
      count: 3,
      truncated: false,
    });
  });

  it('flushes by itself after the window, and sends nothing for an empty change', async () => {
    const { target, sent, next } = fakeTarget();
    const diffs = new PresenceDiffs(target, storeSaying([member('ada')]), MAX);
    diffs.push('t:a:tenant', 'tenant', { joins: [], leaves: [], updates: [] });
    diffs.push('t:a:tenant', 'tenant', { joins: [member('ada')], leaves: [], updates: [] });
    expect(sent).toHaveLength(0);
    expect(await next()).toEqual({ room: 'tenant', joins: [member('ada')], leaves: [], updates: [], count: 1, truncated: false });
    expect(sent).toHaveLength(1);
  });

  it('falls back to what this node saw when the store cannot answer (Redis away)', async () => {
    const { target, sent } = fakeTarget();
    const diffs = new PresenceDiffs(target, { members: () => Promise.reject(new Error('redis down')) }, MAX);
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('ada')] });
    diffs.push('t:a:tenant', 'tenant', { ...none, updates: [member('bob', 2)] });
    diffs.push('t:a:tenant', 'tenant', { ...none, leaves: ['cy'] });
    await diffs.flush();
    // No count: nobody could read it.
    expect(sent[0]?.diff).toEqual({
      room: 'tenant',
      joins: [member('ada')],
      leaves: ['cy'],
      updates: [member('bob', 2)],
      truncated: false,
    });
  });

  it('keeps a room it last read over the bound silent while the store cannot answer', async () => {
    const { target, sent } = fakeTarget();
    let answering = true;
    const store: Pick<PresenceStore, 'members'> = {
      members: async (_room, ids) => {
        if (!answering) throw new Error('redis down');
        return { count: 5, connections: 5, members: new Map(), crossedOver: ids.includes('ada') };
      },
    };
    const diffs = new PresenceDiffs(target, store, 3);
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('ada')] });
    await diffs.flush();
    expect(sent.map((s) => s.diff.truncated)).toEqual([true]);
    answering = false;
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('bob')] });
    // A room never read over the bound still gets what this node saw.
    diffs.push('t:a:user:bob', 'user:bob', { ...none, joins: [member('bob')] });
    await diffs.flush();
    expect(sent.map((s) => s.room)).toEqual(['t:a:tenant', 't:a:user:bob']);
  });

  it('keeps flushing after a flush whose emit threw, and reports the error', async () => {
    const { target, sent } = fakeTarget();
    let fail = true;
    const flaky: PresenceTarget = {
      to: (room) => ({
        emit: (event, diff) => {
          if (fail) throw new Error('adapter broke');
          return target.to(room).emit(event, diff);
        },
      }),
    };
    const errors: unknown[] = [];
    const diffs = new PresenceDiffs(flaky, storeSaying([member('ada'), member('bob')]), MAX, (err) => errors.push(err));
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('ada')] });
    await diffs.flush();
    expect(errors).toHaveLength(1);
    fail = false;
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('bob')] });
    await diffs.flush();
    expect(sent.map((x) => x.diff.joins)).toEqual([[member('bob')]]);
  });

  it('sends the flushes of one node in order, even when the store answers the first one last', async () => {
    const { target, sent } = fakeTarget();
    const answers: (() => void)[] = [];
    const slowFirst: Pick<PresenceStore, 'members'> = {
      members: (_room, ids) =>
        new Promise((resolve) => {
          const reply = () =>
            resolve({
              count: ids.length,
              connections: ids.length,
              members: new Map(ids.map((id) => [id, member(id, answers.length)])),
              crossedOver: false,
            });
          answers.push(reply);
        }),
    };
    const diffs = new PresenceDiffs(target, slowFirst, MAX);
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('ada')] });
    const first = diffs.flush();
    diffs.push('t:a:tenant', 'tenant', { ...none, leaves: ['bob'] });
    const second = diffs.flush();
    await new Promise((r) => setImmediate(r));
    // The second flush has not even asked yet: it waits for the first to be sent.
    expect(answers).toHaveLength(1);
    answers[0]?.();
    await first;
    await new Promise((r) => setImmediate(r));
    answers[1]?.();
    await second;
    expect(sent.map((s) => [...s.diff.joins, ...s.diff.updates].map((m) => m.userId))).toEqual([['ada'], ['bob']]);
  });
});

describe('presence diffs of a room over PRESENCE_MAX_CONNECTIONS', () => {
  const room = 't:acme:tenant';
  /** A room bounded at 3 connections, `joined` users (one connection each) already in it; `sent` holds the diffs of `room`. */
  async function bounded(joined: number, max = 3) {
    const store = new MemoryPresence();
    const { target, sent } = fakeTarget();
    const diffs = new PresenceDiffs(target, store, max);
    const join = async (userId: string) =>
      diffs.push(room, 'tenant', await store.join(room, { connId: `c-${userId}`, userId, name: null }));
    const leave = async (userId: string) => diffs.push(room, 'tenant', await store.leave(room, `c-${userId}`));
    for (let i = 0; i < joined; i++) await store.join(room, { connId: `c-u${i}`, userId: `u${i}`, name: null });
    return { store, diffs, join, leave, sent: () => sent.filter((s) => s.room === room).map((s) => s.diff) };
  }
  const truncatedAt = (count: number): PresenceDiff => ({ room: 'tenant', joins: [], leaves: [], updates: [], count, truncated: true });

  it('sends diffs while the room is at the bound', async () => {
    const r = await bounded(2);
    await r.join('ada');
    await r.diffs.flush();
    expect(r.sent()).toEqual([{ room: 'tenant', joins: [member('ada')], leaves: [], updates: [], count: 3, truncated: false }]);
  });

  it('says once that the room went over, naming nobody, then sends nothing while it stays over', async () => {
    const r = await bounded(3);
    await r.join('ada');
    await r.diffs.flush();
    expect(r.sent()).toEqual([truncatedAt(4)]);
    await r.join('bob');
    await r.diffs.flush();
    await r.leave('ada');
    r.diffs.push(room, 'tenant', await r.store.update(room, 'c-bob', { status: 'editing' }));
    await r.diffs.flush();
    expect(r.sent()).toEqual([truncatedAt(4)]);
  });

  it('counts connections, not users: a second tab of someone already there crosses the bound', async () => {
    const r = await bounded(2);
    await r.join('ada');
    await r.diffs.flush(); // 3 users, 3 connections: at the bound
    r.diffs.push(room, 'tenant', await r.store.join(room, { connId: 'c-ada-2', userId: 'ada', name: null }));
    await r.diffs.flush(); // still 3 users, 4 connections
    expect(r.sent()).toEqual([
      { room: 'tenant', joins: [member('ada')], leaves: [], updates: [], count: 3, truncated: false },
      truncatedAt(3),
    ]);
    expect(await r.store.snapshot(room, 3)).toEqual({ count: 3, connections: 4, members: [] });
  });

  it('resumes with the changes from then on once the room is back at the bound, and says so again at the next crossing', async () => {
    const r = await bounded(3);
    await r.join('ada');
    await r.join('bob');
    await r.diffs.flush();
    await r.leave('bob');
    await r.diffs.flush(); // 4: still over
    await r.leave('ada');
    await r.diffs.flush(); // 3: at the bound
    await r.join('cy');
    await r.diffs.flush(); // 4: over again
    expect(r.sent()).toEqual([
      truncatedAt(5),
      { room: 'tenant', joins: [], leaves: ['ada'], updates: [], count: 3, truncated: false },
      truncatedAt(4),
    ]);
  });

  it('sends the rooms of one flush in the order they first changed, whatever the store answers first', async () => {
    const { target, sent } = fakeTarget();
    const store = new MemoryPresence();
    const slowFor = (r: string): Pick<PresenceStore, 'members'> => ({
      members: async (asked, ids, max) => {
        if (asked === r) await new Promise((resolve) => setTimeout(resolve, 20));
        return store.members(asked, ids, max);
      },
    });
    const diffs = new PresenceDiffs(target, slowFor('t:a:tenant'), 3);
    diffs.push('t:a:tenant', 'tenant', await store.join('t:a:tenant', { connId: 'c1', userId: 'ada', name: null }));
    diffs.push('t:a:user:ada', 'user:ada', await store.join('t:a:user:ada', { connId: 'c1', userId: 'ada', name: null }));
    await diffs.flush();
    expect(sent.map((s) => s.room)).toEqual(['t:a:tenant', 't:a:user:ada']);
  });

  it('reads and sends nothing with the bound at 0 (presence lists off)', async () => {
    const r = await bounded(0, 0);
    const read = vi.spyOn(r.store, 'members');
    await r.join('ada');
    await r.diffs.flush();
    expect(read).not.toHaveBeenCalled();
    expect(r.sent()).toEqual([]);
  });
});

/**
 * Two nodes, each with its own window, over one shared presence store (what Redis is to them): the
 * watcher applies whatever either node sends, in the order sent. The scenarios that left a ghost
 * member when each node sent its own view (the real thing on two nodes and Redis:
 * test/integration/presence-cluster.test.ts).
 */
describe('presence diffs of two nodes over one shared store', () => {
  function twoNodes() {
    const shared = new MemoryPresence();
    const { target, sent } = fakeTarget();
    const w = watcher();
    const relay: PresenceTarget = {
      to: (room) => ({
        emit: (event, diff) => {
          w.apply(diff);
          return target.to(room).emit(event, diff);
        },
      }),
    };
    const a = new PresenceDiffs(relay, shared, MAX);
    const b = new PresenceDiffs(relay, shared, MAX);
    const room = 't:acme:tenant';
    const join = async (node: PresenceDiffs, conn: string, userId: string) =>
      node.push(room, 'tenant', await shared.join(room, { connId: conn, userId, name: null }));
    const leave = async (node: PresenceDiffs, conn: string) => node.push(room, 'tenant', await shared.leave(room, conn));
    return { a, b, w, sent, join, leave };
  }

  it('sends the final leave when a join and a leave fold into one window of a node while the other node showed the user', async () => {
    const { a, b, w, join, leave } = twoNodes();
    await join(a, 'a1', 'ada'); // A's window opens: ada joins
    await join(b, 'b1', 'ada'); // ada's second connection, on B
    await b.flush(); // B's window closes first: the watcher sees ada
    expect(w.members.has('ada')).toBe(true);
    await leave(b, 'b1');
    await leave(a, 'a1'); // A's window: a join and a leave of ada — she is gone
    await b.flush();
    await a.flush();
    expect([...w.members.keys()]).toEqual([]);
  });

  it("does not let one node's stale 'still here' arrive after the other node's final leave", async () => {
    const { a, b, w, join, leave } = twoNodes();
    await join(a, 'a1', 'ada');
    await join(b, 'b1', 'ada');
    await a.flush();
    await b.flush();
    expect(w.members.get('ada')?.connections).toBe(2);
    await leave(a, 'a1'); // A sees ada still here (1 connection left, on B)…
    await leave(b, 'b1'); // …and B sees her go.
    await b.flush(); // B's window closes first…
    await a.flush(); // …A's "still here" would come after it.
    expect([...w.members.keys()]).toEqual([]);
  });
});
