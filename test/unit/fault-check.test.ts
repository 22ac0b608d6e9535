import { describe, expect, it } from 'vitest';
import { type CheckInput, check, type LogEvent, loggedOwed, type ReaderRoom, type WriteRecord } from '../fault/check.js';
import { startIdOf } from '../fault/readers.js';

const T = 'tenant';
const P = 'process:p1';

/** Log: 1 set-up event; 2..6 transitions of p1 (tenant + process room) tagged w:2..w:6; 7 the barrier. */
function world(over: Partial<CheckInput> = {}): CheckInput {
  const log: LogEvent[] = [{ id: 1, rooms: [P, T], tag: null }];
  const writes: WriteRecord[] = [];
  for (let id = 2; id <= 6; id++) {
    log.push({ id, rooms: [P, T], tag: `w:${id}` });
    writes.push({ tags: [`w:${id}`], firstSentAt: 1000 + id, outcome: 'acked', acked: [{ id, rooms: [P, T] }] });
  }
  log.push({ id: 7, rooms: [T], tag: 'barrier:t' }, { id: 8, rooms: [P], tag: 'barrier:p' });
  writes.push({
    tags: ['barrier:t', 'barrier:p'],
    firstSentAt: 2000,
    outcome: 'acked',
    acked: [
      { id: 7, rooms: [T] },
      { id: 8, rooms: [P] },
    ],
  });
  return {
    log,
    writes,
    readers: [reader(T, [2, 3, 4, 5, 6, 7]), reader(P, [2, 3, 4, 5, 6, 8])],
    barrier: new Map([
      [T, 7],
      [P, 8],
    ]),
    ...over,
  };
}

function reader(room: string, delivered: number[], start: Partial<ReaderRoom> = {}): ReaderRoom {
  return { reader: 'r', room, readyAt: 1000, startId: 1, delivered, ...start };
}

const zero = {
  falseAcks: 0,
  rejectedCommitted: 0,
  doubleApplied: 0,
  notReady: 0,
  barrierUnseen: 0,
  notCaughtUp: 0,
  missingAcked: 0,
  missingUnacked: 0,
  duplicates: 0,
  outOfOrder: 0,
  early: 0,
  phantom: 0,
};

describe('the fault-suite checker', () => {
  it('finds nothing when every reader got exactly its rooms’ events after its start, in order', () => {
    expect(check(world())).toMatchObject({ ...zero, acked: 6, readerRooms: 2, examples: [] });
  });

  it('counts a missing acked event, a duplicate and an out-of-order delivery, each once', () => {
    const v = check(world({ readers: [reader(T, [2, 4, 3, 4, 6, 7])] }));
    // 5 is missing; the second 4 is a duplicate; 3 after 4 is out of order.
    expect(v).toMatchObject({ ...zero, missingAcked: 1, duplicates: 1, outOfOrder: 1 });
    expect(v.examples.join('\n')).toContain('r tenant was not given 1 of 6: 5');
  });

  it('owes a reader only what follows its position at subscribe, and flags what came before as early', () => {
    const late = reader(T, [5, 6, 7], { startId: 4, readyAt: 1004.5 });
    expect(check(world({ readers: [late] }))).toMatchObject(zero);
    const tooEarly = reader(T, [4, 5, 6, 7], { startId: 4, readyAt: 1004.5 });
    expect(check(world({ readers: [tooEarly] }))).toMatchObject({ ...zero, early: 1 });
  });

  it('owes every write first sent after the ack even if the ack’s position claims more', () => {
    // The ack says position 6, but w:5 and w:6 were sent after it arrived: they are owed.
    const r = reader(T, [7], { startId: 6, readyAt: 1004.5 });
    expect(check(world({ readers: [r] }))).toMatchObject({ ...zero, missingAcked: 2 });
  });

  it('with no position in the ack, owes exactly the writes sent after it', () => {
    const r = reader(T, [5, 6, 7], { startId: undefined, readyAt: 1004.5 });
    expect(check(world({ readers: [r] }))).toMatchObject(zero);
  });

  it('counts committed events whose write was never answered as owed, apart from acked ones', () => {
    const w = world();
    const unanswered = w.writes[2]!; // w:4
    unanswered.outcome = 'unknown';
    delete unanswered.acked;
    const v = check({ ...w, readers: [reader(T, [2, 3, 5, 6, 7])] });
    expect(v).toMatchObject({ ...zero, missingUnacked: 1, committedUnacked: 1, unknown: 1 });
  });

  it('flags ids the log does not have in the room as phantom, and a barrier never given', () => {
    const v = check(world({ readers: [reader(P, [2, 3, 4, 5, 6, 7, 99])] }));
    // 7 is the tenant room's barrier, not the process room's; 99 does not exist; 8, the barrier
    // of the process room, never came (and is owed like any other event).
    expect(v).toMatchObject({ ...zero, phantom: 2, barrierUnseen: 1, missingAcked: 1 });
  });

  it('flags an ack the log does not back: lost, given to another write, or in other rooms', () => {
    const w = world();
    w.log = w.log.filter((e) => e.id !== 3).map((e) => (e.id === 4 ? { ...e, tag: 'w:other' } : e));
    w.writes[3]!.acked = [{ id: 5, rooms: [T] }];
    const v = check({ ...w, readers: [] });
    expect(v).toMatchObject({ ...zero, falseAcks: 3 });
    expect(v.examples.join('\n')).toMatch(
      /id 3, which the log does not have[\s\S]*id 4, which the log has as w:other[\s\S]*id 5 in \[tenant\]/,
    );
  });

  it('flags a write applied twice and a refused write that committed', () => {
    const w = world();
    w.log.push({ id: 9, rooms: [P, T], tag: 'w:2' });
    w.writes.push({ tags: ['w:x'], firstSentAt: 1500, outcome: 'rejected' });
    w.log.push({ id: 10, rooms: [T], tag: 'w:x' });
    expect(check({ ...w, readers: [] })).toMatchObject({ ...zero, doubleApplied: 1, rejectedCommitted: 1 });
  });

  it('counts a reader room that never got its subscribe acked', () => {
    expect(check(world({ readers: [reader(T, [], { readyAt: undefined })] }))).toMatchObject({ ...zero, notReady: 1 });
  });

  it('counts a reader room that had not been given every event before the barrier, though the barrier repaired it', () => {
    // The room's last event, 6, came only with the barrier's gap fetch: nothing is missing in the end.
    const repaired = reader(T, [2, 3, 4, 5, 6, 7], { deliveredWhenQuiet: 4 });
    const v = check(world({ readers: [repaired, reader(P, [2, 3, 4, 5, 6, 8], { deliveredWhenQuiet: 5 })] }));
    expect(v).toMatchObject({ ...zero, notCaughtUp: 1 });
    expect(v.examples).toEqual(['not caught up: r tenant had not been given 1 of 5 events before the barrier (0 of them unacked): 6']);
  });

  it('owes a committed event nobody was told of (its node died before publishing), but not the barrier before it was published', () => {
    const w = world();
    const unanswered = w.writes[4]!; // w:6
    unanswered.outcome = 'unknown';
    delete unanswered.acked;
    const behind = check({ ...w, readers: [reader(T, [2, 3, 4, 5, 6, 7], { deliveredWhenQuiet: 4 })] });
    expect(behind).toMatchObject({ ...zero, notCaughtUp: 1, committedUnacked: 1, unknown: 1 });
    expect(behind.examples).toEqual(['not caught up: r tenant had not been given 1 of 5 events before the barrier (1 of them unacked): 6']);
    const given = check({ ...w, readers: [reader(T, [2, 3, 4, 5, 6, 7], { deliveredWhenQuiet: 5 })] });
    expect(given).toMatchObject({ ...zero, notCaughtUp: 0, committedUnacked: 1, unknown: 1 });
  });

  it('with a stand-in barrier (none acked), owes the room’s last log event', () => {
    const w = world();
    w.writes.pop(); // no barrier acked; each room's last acked event stands in for it
    const v = check({
      ...w,
      barrier: new Map([[T, 6]]),
      barrierStandIn: true,
      readers: [reader(T, [2, 3, 4, 5, 6], { deliveredWhenQuiet: 4 })],
    });
    expect(v).toMatchObject({ ...zero, notCaughtUp: 1 });
  });

  it('owes a reader room, once the writes stop, the logged events of that room after its start only, acked or not', () => {
    const w = world();
    const log = w.log.filter((e) => !e.tag?.startsWith('barrier'));
    w.writes[4]!.outcome = 'unknown'; // w:6: committed, never acked
    const late = reader(T, [], { startId: 4, readyAt: 1004.5 });
    // Without a position, the start is when the ack came: writes first sent after it (w:5, w:6).
    const noPosition = reader(P, [], { startId: undefined, readyAt: 1004.5 });
    const never = reader(T, [], { readyAt: undefined });
    const other = reader('process:p2', [], { startId: 0 });
    const owed = loggedOwed(log, [late, noPosition, never, other], w.writes);
    expect([...owed.values()]).toEqual([[5, 6], [5, 6], [], []]);
  });

  it('reads the subscription start from the ack’s position, or the older cursor', () => {
    expect(startIdOf({ position: { offset: 3, id: 41, epoch: 'e' } })).toBe(41);
    expect(startIdOf({ cursor: 17 })).toBe(17);
    expect(startIdOf({ events: [] })).toBeUndefined();
  });
});
