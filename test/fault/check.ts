/**
 * The checker of the fault suite: what the writers were told, what the readers were given and what
 * the Postgres log holds, compared. Pure (no I/O), so its counting has its own unit test
 * (test/unit/fault-check.test.ts).
 *
 * The log is the truth. Every event a writer asks for carries a tag (`data.chaos`, unique per
 * intended event), so each log row is traced back to the write that made it and the time that
 * write was first sent. A write's outcome is `acked` (2xx: the server says it committed),
 * `rejected` (4xx: the server says it did not) or `unknown` (a 5xx, a dropped connection or a
 * timeout that was not resolved by a retry: it may or may not have committed — only the log says).
 *
 * For every reader and room it subscribed to, the events it must be given are the room's log
 * events up to the final barrier event that are after its subscription start, where "after" means
 * either (a) an id above the room's position at first subscribe (the subscribe ack's head, an event
 * id) or (b) written by a request first sent after that ack arrived (such a write commits after the
 * server joined the socket to the room, whatever the ack claims). (b) keeps the check sound if the
 * ack's position were wrong; for a correct server (b) ⊆ (a).
 *
 * Caught up when quiet: the barrier is itself an event of every room, so a reader that lost a
 * room's last events would be repaired by it (the SDK fetches the gap it opens). What a reader room
 * had been given when the writes had stopped — before the barrier was published — is recorded too
 * (`deliveredWhenQuiet`), and must already hold every event it is owed, acked or not: a room that
 * goes quiet after losing its last events must not wait for an event that may never come, and an
 * event committed by a write whose client never heard back (its node died between COMMIT and
 * publish) is in the log all the same.
 */

/** Identifies one intended event; carried in the event's `data.chaos`. */
export type Tag = string;

export interface LogEvent {
  id: number;
  rooms: string[];
  /** `data.chaos` of the row; null for events the harness did not tag (set-up). */
  tag: Tag | null;
}

export type WriteOutcome = 'acked' | 'rejected' | 'unknown';

/** One logical write (its retries included). */
export interface WriteRecord {
  /** One tag per event the write asks for (a transition or publish one, a batch several). */
  tags: Tag[];
  /** When the first attempt was sent (ms since epoch). */
  firstSentAt: number;
  outcome: WriteOutcome;
  /** For `acked`: the committed event of each tag, in `tags` order. */
  acked?: { id: number; rooms: string[] }[];
}

/** What one reader was given in one room. */
export interface ReaderRoom {
  reader: string;
  room: string;
  /** When the first subscribe ack of the room arrived; undefined if none ever did. */
  readyAt?: number;
  /** The room's position at that ack as an event id; undefined if the ack carried none. */
  startId?: number;
  /** Event ids handed to the room's handler, in delivery order. */
  delivered: number[];
  /**
   * How many of `delivered` it had when the writes had stopped and before the barrier was
   * published; undefined when not measured.
   */
  deliveredWhenQuiet?: number;
}

export interface CheckInput {
  log: LogEvent[];
  writes: WriteRecord[];
  readers: ReaderRoom[];
  /** The acked barrier event of each room. */
  barrier: Map<string, number>;
  /** No barrier was acked: `barrier` holds each room's last log event instead. @default false */
  barrierStandIn?: boolean;
}

export interface Verdict {
  /** Logical writes by outcome. */
  acked: number;
  rejected: number;
  unknown: number;
  /** `unknown` writes whose events are in the log (committed, the client never heard). */
  committedUnacked: number;
  /** Acked events absent from the log, or whose id holds another write's event or other rooms. */
  falseAcks: number;
  /** `rejected` writes whose events are in the log anyway. */
  rejectedCommitted: number;
  /** Tags that appear on more than one log event (one write applied twice). */
  doubleApplied: number;
  readerRooms: number;
  /** Reader rooms whose subscribe was never acknowledged. */
  notReady: number;
  /** Reader rooms that were not given the barrier in time. */
  barrierUnseen: number;
  /** Events a reader room had to be given and was not: acked ones, and committed-unacked ones. */
  missingAcked: number;
  missingUnacked: number;
  /**
   * Reader rooms that, when the writes had stopped and before the barrier, had not been given
   * every event they are owed, acked or not (a lost last event of a room that then went quiet).
   */
  notCaughtUp: number;
  /** Deliveries of an id the room had already been given. */
  duplicates: number;
  /** Deliveries of an id below one the room had already been given. */
  outOfOrder: number;
  /** Deliveries of log events of the room from before the reader's subscription start. */
  early: number;
  /** Deliveries of ids the log does not have in that room. */
  phantom: number;
  /** The first findings of each kind, readable. */
  examples: string[];
}

const EXAMPLES_PER_KIND = 5;

export function check(input: CheckInput): Verdict {
  const examples = new Map<string, string[]>();
  const note = (kind: string, text: string) => {
    const list = examples.get(kind) ?? [];
    if (list.length < EXAMPLES_PER_KIND) list.push(`${kind}: ${text}`);
    examples.set(kind, list);
  };

  const index = indexOf(input.log, input.writes);
  const { byId } = index;
  const byTag = new Map<Tag, number[]>();
  for (const e of index.sorted) if (e.tag !== null) byTag.set(e.tag, [...(byTag.get(e.tag) ?? []), e.id]);

  const v: Verdict = {
    acked: 0,
    rejected: 0,
    unknown: 0,
    committedUnacked: 0,
    falseAcks: 0,
    rejectedCommitted: 0,
    doubleApplied: 0,
    readerRooms: input.readers.length,
    notReady: 0,
    barrierUnseen: 0,
    missingAcked: 0,
    missingUnacked: 0,
    notCaughtUp: 0,
    duplicates: 0,
    outOfOrder: 0,
    early: 0,
    phantom: 0,
    examples: [],
  };

  const ackedIds = new Set<number>();
  for (const w of input.writes) {
    v[w.outcome]++;
    const inLog = w.tags.some((t) => byTag.has(t));
    if (w.outcome === 'unknown' && inLog) v.committedUnacked++;
    if (w.outcome === 'rejected' && inLog) {
      v.rejectedCommitted++;
      note('rejected but committed', `${w.tags.join(',')} is in the log as ${w.tags.flatMap((t) => byTag.get(t) ?? []).join(',')}`);
    }
    if (w.outcome !== 'acked') continue;
    w.tags.forEach((tag, i) => {
      const ack = w.acked?.[i];
      const row = ack && byId.get(ack.id);
      let wrong: string | null = null;
      if (!ack) wrong = `${tag} acked without an event`;
      else if (!row) wrong = `${tag} acked as id ${ack.id}, which the log does not have`;
      else if (row.tag !== tag) wrong = `${tag} acked as id ${ack.id}, which the log has as ${row.tag ?? 'an untagged event'}`;
      else if (!sameRooms(row.rooms, ack.rooms)) wrong = `${tag} acked as id ${ack.id} in [${ack.rooms}], the log says [${row.rooms}]`;
      if (wrong) {
        v.falseAcks++;
        note('false ack', wrong);
      } else if (ack) ackedIds.add(ack.id);
    });
  }
  for (const [tag, ids] of byTag) {
    if (ids.length < 2) continue;
    v.doubleApplied++;
    note('applied twice', `${tag} is in the log as ids ${ids.join(', ')}`);
  }

  for (const r of input.readers) {
    const who = `${r.reader} ${r.room}`;
    if (r.readyAt === undefined) {
      v.notReady++;
      note('never subscribed', who);
      continue;
    }
    const barrierId = input.barrier.get(r.room);
    if (barrierId === undefined) throw new Error(`no barrier event for room ${r.room}`);
    const expected = new Set(owedOf(r, index).filter((id) => id <= barrierId));

    const seen = new Set<number>();
    let highest = Number.NEGATIVE_INFINITY;
    for (const id of r.delivered) {
      if (seen.has(id)) {
        v.duplicates++;
        note('duplicate', `${who} was given ${id} again`);
        continue;
      }
      seen.add(id);
      if (id < highest) {
        v.outOfOrder++;
        note('out of order', `${who} was given ${id} after ${highest}`);
      } else highest = id;
      if (!byId.get(id)?.rooms.includes(r.room)) {
        v.phantom++;
        note('phantom', `${who} was given ${id}, which the log does not have in that room`);
      } else if (id <= barrierId && !expected.has(id)) {
        v.early++;
        note('early', `${who} was given ${id}, from before its start (position ${r.startId ?? 'none'})`);
      }
    }
    if (!seen.has(barrierId)) {
      v.barrierUnseen++;
      note('barrier not seen', `${who} (barrier ${barrierId}; last given ${r.delivered.at(-1) ?? 'none'})`);
    }
    const missing = [...expected].filter((id) => !seen.has(id));
    for (const id of missing) {
      if (ackedIds.has(id)) v.missingAcked++;
      else v.missingUnacked++;
    }
    if (missing.length > 0) note('missing', `${who} was not given ${missing.length} of ${expected.size}: ${abbreviate(missing)}`);

    if (r.deliveredWhenQuiet === undefined) continue;
    const given = new Set(r.delivered.slice(0, r.deliveredWhenQuiet));
    const owed = [...expected].filter((id) => input.barrierStandIn || id !== barrierId);
    const behind = owed.filter((id) => !given.has(id));
    if (behind.length > 0) {
      v.notCaughtUp++;
      const unacked = behind.filter((id) => !ackedIds.has(id)).length;
      note(
        'not caught up',
        `${who} had not been given ${behind.length} of ${owed.length} events before the barrier (${unacked} of them unacked): ${abbreviate(behind)}`,
      );
    }
  }
  v.examples = [...examples.values()].flat();
  return v;
}

/** The log in id order, by id, each room's ids in order, and when each write's tag was first sent. */
interface LogIndex {
  sorted: LogEvent[];
  byId: Map<number, LogEvent>;
  roomLog: Map<string, number[]>;
  sentAt: Map<Tag, number>;
}

function indexOf(log: readonly LogEvent[], writes: readonly WriteRecord[]): LogIndex {
  const sorted = [...log].sort((a, b) => a.id - b.id);
  const byId = new Map<number, LogEvent>();
  const roomLog = new Map<string, number[]>();
  for (const e of sorted) {
    byId.set(e.id, e);
    for (const room of e.rooms) {
      const ids = roomLog.get(room) ?? [];
      ids.push(e.id);
      roomLog.set(room, ids);
    }
  }
  const sentAt = new Map<Tag, number>();
  for (const w of writes) for (const tag of w.tags) sentAt.set(tag, w.firstSentAt);
  return { sorted, byId, roomLog, sentAt };
}

/**
 * Of the log's events of `r.room`, those that are the reader's: after its start, as above. Empty
 * for a room never subscribed.
 */
function owedOf(r: ReaderRoom, { byId, roomLog, sentAt }: LogIndex): number[] {
  const readyAt = r.readyAt;
  if (readyAt === undefined) return [];
  return (roomLog.get(r.room) ?? []).filter((id) => {
    if (r.startId !== undefined && id > r.startId) return true;
    const tag = byId.get(id)?.tag;
    return tag != null && (sentAt.get(tag) ?? Number.NEGATIVE_INFINITY) > readyAt;
  });
}

/**
 * Every event of the log (read once the writes have stopped) that each reader room is owed, acked
 * or not: what the engine waits for before it publishes the barrier. Keyed by the reader room.
 */
export function loggedOwed(
  log: readonly LogEvent[],
  rooms: readonly ReaderRoom[],
  writes: readonly WriteRecord[],
): Map<ReaderRoom, number[]> {
  const index = indexOf(log, writes);
  return new Map(rooms.map((r) => [r, owedOf(r, index)]));
}

function sameRooms(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((room, i) => room === b[i]);
}

function abbreviate(ids: number[]): string {
  return ids.length <= 8 ? ids.join(', ') : `${ids.slice(0, 8).join(', ')}, … (${ids.length - 8} more)`;
}
