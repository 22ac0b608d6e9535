import type { FluxoEvent, RoomPosition } from '../protocol.js';

/** Events of a room that can no longer be had: the application should reload the room's state. */
export interface RoomGap {
  room: string;
  /** `retention`: the log no longer holds them; `epoch`: the log was recreated or restored. */
  reason: 'retention' | 'epoch';
  /** First and last offset missed (for `epoch`, offsets of the old log). */
  fromOffset: number;
  toOffset: number;
}

export interface RoomStreamHooks {
  /** Hands one event to the application: exactly once, in offset order. */
  deliver(event: FluxoEvent): void;
  /** A gap stayed open for `gapWaitMs`: subscribe again from `resumeAfter` to fill it from the log. */
  fetch(): void;
  /** History that cannot be replayed (see RoomGap). */
  lost(gap: RoomGap): void;
}

/** How long an out-of-order event waits for the ones before it before the room is fetched. @default 500 */
export const GAP_WAIT_MS = 500;

/** The event's offset in `room`, or undefined when it does not belong to it. */
export function offsetIn(event: FluxoEvent, room: string): number | undefined {
  const i = event.rooms.indexOf(room);
  const offset = i < 0 ? undefined : event.offsets?.[i];
  return typeof offset === 'number' ? offset : undefined;
}

/**
 * The exactly-once, in-order view of one room, by the rules of "Room streams" in protocol.ts.
 * Live events and replayed ones (subscribe acks) are both offered here, in any order and with
 * repeats; each is delivered once its offset follows the position. An event past a gap is held,
 * never dropped, and a gap still open after `gapWaitMs` asks for a fetch from the log.
 */
export class RoomStream {
  /** Offset of the last event delivered; undefined until the first ack says where the room stands. */
  private offset: number | undefined;
  /** Id of that event (or the `after` the room was opened with): what a resubscribe replays after. */
  private id: number | undefined;
  private epoch: string | undefined;
  /** Events past the position, by offset. */
  private readonly pending = new Map<number, FluxoEvent>();
  private gapTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly room: string,
    private readonly hooks: RoomStreamHooks,
    start: { after?: number; position?: RoomPosition } = {},
    private readonly gapWaitMs = GAP_WAIT_MS,
  ) {
    if (start.position) {
      this.offset = start.position.offset;
      this.id = start.position.id;
      this.epoch = start.position.epoch;
    } else this.id = start.after;
  }

  /** What to send as `after` on the next subscribe; undefined: start at the room's head. */
  get resumeAfter(): number | undefined {
    return this.id;
  }

  /** The position to persist and pass back as `subscribe(room, h, { position })`; null before the first ack. */
  get position(): RoomPosition | null {
    return this.offset === undefined || this.epoch === undefined ? null : { offset: this.offset, id: this.id ?? 0, epoch: this.epoch };
  }

  /** Events held past a gap (for tests and diagnostics). */
  get held(): number {
    return this.pending.size;
  }

  /** An event that arrived live. */
  live(event: FluxoEvent): void {
    const offset = offsetIn(event, this.room);
    if (offset === undefined) {
      // Not part of the stream (a signal sent with @socket.io/redis-emitter, never stored): as it comes.
      if (event.rooms.includes(this.room)) this.hooks.deliver(event);
      return;
    }
    // Before the first ack the position is unknown: hold everything, the ack sorts it out.
    if (this.offset !== undefined && offset <= this.offset) return;
    this.pending.set(offset, event);
    if (this.offset !== undefined) this.drain();
  }

  /** A (re)subscribe was answered: the room's head (read first) and the replay after `resumeAfter`. */
  synced(head: RoomPosition, replayed: readonly FluxoEvent[]): void {
    const first = replayed.length > 0 ? offsetIn(replayed[0]!, this.room) : undefined;
    if (this.epoch !== undefined && head.epoch !== this.epoch) {
      // Our position belongs to another log; its replay means nothing. Go on from the head.
      this.hooks.lost({ room: this.room, reason: 'epoch', fromOffset: (this.offset ?? 0) + 1, toOffset: head.offset });
      this.pending.clear();
      this.moveTo(head.offset, head.id);
      replayed = [];
    } else if (this.offset === undefined) {
      if (this.id === undefined) this.moveTo(head.offset, head.id);
      // Opened after an event id: the replay follows it without a hole (retention aside, unknowable here).
      else if (first !== undefined) this.offset = first - 1;
      else this.moveTo(head.offset, Math.max(this.id, head.id));
    } else if (first !== undefined && first > this.offset + 1) {
      this.hooks.lost({ room: this.room, reason: 'retention', fromOffset: this.offset + 1, toOffset: first - 1 });
      this.offset = first - 1;
    } else if (first === undefined && head.offset > this.offset) {
      this.hooks.lost({ room: this.room, reason: 'retention', fromOffset: this.offset + 1, toOffset: head.offset });
      this.moveTo(head.offset, head.id);
    }
    this.epoch = head.epoch;
    for (const event of replayed) {
      const offset = offsetIn(event, this.room);
      if (offset !== undefined && offset > this.offset!) this.pending.set(offset, event);
    }
    this.drain();
  }

  /** Stops the gap timer (the room was unsubscribed or the client closed). */
  close(): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
  }

  private moveTo(offset: number, id: number): void {
    this.offset = offset;
    this.id = id;
    for (const held of this.pending.keys()) if (held <= offset) this.pending.delete(held);
  }

  private drain(): void {
    let offset = this.offset!;
    for (let next = this.pending.get(offset + 1); next; next = this.pending.get(offset + 1)) {
      this.pending.delete(++offset);
      this.offset = offset;
      this.id = next.id;
      this.hooks.deliver(next);
    }
    if (this.pending.size === 0) this.close();
    else this.gapTimer ??= setTimeout(() => this.onGapTimer(), this.gapWaitMs);
  }

  private onGapTimer(): void {
    this.gapTimer = undefined;
    if (this.pending.size > 0) this.hooks.fetch();
  }
}
