import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FluxoEvent, RoomPosition } from '../../shared/protocol.js';
import { type RoomGap, RoomStream } from '../../shared/sdk/room-stream.js';

const ROOM = 'workflow:w1';

/** Event `id` of the tenant at `offset` in ROOM (and in the tenant room, at another offset). */
function ev(offset: number, id = offset * 3): FluxoEvent {
  return {
    id,
    type: 'custom',
    rooms: ['process:p1', ROOM, 'tenant'],
    offsets: [1, offset, id],
    processId: null,
    workflowId: null,
    fromStage: null,
    toStage: null,
    version: null,
    actor: 'a',
    at: new Date(0).toISOString(),
    data: {},
  };
}

const head = (offset: number, epoch = 'e1'): RoomPosition => ({ offset, id: offset * 3, epoch });

function stream(start: { after?: number; position?: RoomPosition } = {}) {
  const delivered: (number | undefined)[] = [];
  const gaps: RoomGap[] = [];
  const fetch = vi.fn();
  const s = new RoomStream(ROOM, { deliver: (e) => delivered.push(offsetOf(e)), fetch, lost: (g) => gaps.push(g) }, start, 500);
  return { s, delivered, gaps, fetch };
}

const offsetOf = (e: FluxoEvent): number | undefined => e.offsets?.[e.rooms.indexOf(ROOM)];

/** Deterministic shuffle (mulberry32), so a failure names its seed. */
function shuffled<T>(items: T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('RoomStream', () => {
  it('holds live events until the first ack, then starts after the head', () => {
    const { s, delivered } = stream();
    s.live(ev(5));
    s.live(ev(4));
    s.live(ev(6));
    expect(delivered).toEqual([]);
    s.synced(head(4), []);
    expect(delivered).toEqual([5, 6]);
    expect(s.position).toEqual({ offset: 6, id: 18, epoch: 'e1' });
  });

  it('delivers out-of-order and repeated events once each, in offset order, whatever the arrival order', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const { s, delivered, gaps } = stream({ position: head(10) });
      const arrivals = shuffled([...Array.from({ length: 40 }, (_, i) => ev(11 + i)), ev(12), ev(30), ev(9), ev(50)], seed);
      for (const e of arrivals) s.live(e);
      expect(delivered, `seed ${seed}`).toEqual(Array.from({ length: 40 }, (_, i) => 11 + i));
      expect(gaps).toEqual([]);
      expect(s.held).toBe(0);
    }
  });

  it('never drops an event past a gap; fetches after the wait, and the replay fills the gap', () => {
    vi.useFakeTimers();
    const { s, delivered, fetch } = stream({ position: head(1) });
    s.live(ev(2));
    s.live(ev(5));
    s.live(ev(4));
    expect(delivered).toEqual([2]);
    expect(s.resumeAfter).toBe(6); // the id of offset 2: where the replay must start
    vi.advanceTimersByTime(499);
    expect(fetch).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fetch).toHaveBeenCalledTimes(1);
    s.synced(head(6), [ev(3), ev(4), ev(5), ev(6)]);
    expect(delivered).toEqual([2, 3, 4, 5, 6]);
    vi.advanceTimersByTime(10_000);
    expect(fetch).toHaveBeenCalledTimes(1); // no gap left, no more fetches
  });

  it('does not fetch when the late event arrives within the wait', () => {
    vi.useFakeTimers();
    const { s, delivered, fetch } = stream({ position: head(0) });
    s.live(ev(2));
    vi.advanceTimersByTime(100);
    s.live(ev(1));
    vi.advanceTimersByTime(10_000);
    expect(delivered).toEqual([1, 2]);
    expect(fetch).not.toHaveBeenCalled();
  });

  it('resumes from a position: replay and live overlap, each event delivered once', () => {
    const { s, delivered, gaps } = stream({ position: head(3) });
    s.live(ev(6));
    s.live(ev(5));
    s.synced(head(6), [ev(4), ev(5), ev(6)]);
    s.live(ev(6));
    s.live(ev(7));
    expect(delivered).toEqual([4, 5, 6, 7]);
    expect(gaps).toEqual([]);
  });

  it('reports history cut by retention (replay starts past the position) and goes on after it', () => {
    const { s, delivered, gaps } = stream({ position: head(3) });
    s.synced(head(9), [ev(8), ev(9)]);
    expect(gaps).toEqual([{ room: ROOM, reason: 'retention', fromOffset: 4, toOffset: 7 }]);
    expect(delivered).toEqual([8, 9]);
  });

  it('reports history cut when the replay is empty but the head is ahead', () => {
    const { s, delivered, gaps } = stream({ position: head(3) });
    s.synced(head(9), []);
    expect(gaps).toEqual([{ room: ROOM, reason: 'retention', fromOffset: 4, toOffset: 9 }]);
    s.live(ev(10));
    expect(delivered).toEqual([10]);
  });

  it('reports an epoch change and restarts from the new head, ignoring the old replay', () => {
    const { s, delivered, gaps } = stream({ position: head(40, 'old') });
    s.synced(head(2, 'new'), [ev(41)]);
    s.live(ev(3));
    expect(gaps).toEqual([{ room: ROOM, reason: 'epoch', fromOffset: 41, toOffset: 2 }]);
    expect(delivered).toEqual([3]);
    expect(s.position?.epoch).toBe('new');
  });

  it('opened after an event id: the replay defines the offsets that follow', () => {
    const { s, delivered, gaps } = stream({ after: 12 });
    expect(s.resumeAfter).toBe(12);
    s.live(ev(7));
    s.synced(head(7), [ev(5), ev(6), ev(7)]);
    expect(delivered).toEqual([5, 6, 7]);
    expect(gaps).toEqual([]);
  });

  it('ignores events of other rooms; passes events without offsets (emitter signals, never stored) straight through', () => {
    const { s, delivered } = stream({ position: head(0) });
    s.live({ ...ev(1), rooms: ['tenant'], offsets: [1] });
    expect(delivered).toEqual([]);
    const signal = { ...ev(1), id: 0, offsets: undefined as unknown as number[] };
    s.live(signal);
    expect(delivered).toEqual([undefined]); // delivered, with no offset in the room
    expect(s.held).toBe(0);
    expect(s.position?.offset).toBe(0);
  });
});
