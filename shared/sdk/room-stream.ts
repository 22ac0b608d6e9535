import type { FluxoEvent } from '../protocol.js';

/**
 * The exactly-once, in-order view of one room. Live events and replayed ones (the subscribe ack's
 * `events`) arrive on two paths that overlap: the server joins the room before it reads the
 * replay, so an event may come both ways, and live events may arrive before the ack. While a
 * (re)subscribe is in flight, live events are held; when the ack comes, replay and held events are
 * merged, sorted by id and delivered past the cursor. Afterwards each live event is delivered if
 * its id is above the cursor (repeats — one per room the event was sent to — are dropped).
 */
export class RoomStream {
  /** Id of the last event delivered (or the `after` the room was opened with). */
  cursor: number | undefined;
  private held: FluxoEvent[] | null = null;
  private syncing = 0;

  constructor(
    private readonly deliver: (event: FluxoEvent) => void,
    after?: number,
  ) {
    this.cursor = after;
  }

  /** Whether a (re)subscribe is in flight (live events are being held). */
  get isSyncing(): boolean {
    return this.syncing > 0;
  }

  /** A subscribe request is about to be sent. */
  beginSync(): void {
    this.syncing++;
    this.held ??= [];
  }

  /** Its ack arrived with these replayed events (already in id order). */
  endSync(replayed: readonly FluxoEvent[]): void {
    this.held = [...(this.held ?? []), ...replayed];
    this.syncing = Math.max(0, this.syncing - 1);
    if (this.syncing === 0) this.flush();
  }

  /**
   * The connection dropped: acks in flight will never come. Held events stay held, so they are
   * merged with the replay of the next subscribe.
   */
  interrupted(): void {
    this.syncing = 0;
  }

  live(event: FluxoEvent): void {
    if (this.held) this.held.push(event);
    else this.offer(event);
  }

  private flush(): void {
    const events = (this.held ?? []).sort((a, b) => a.id - b.id);
    this.held = null;
    for (const event of events) this.offer(event);
  }

  private offer(event: FluxoEvent): void {
    if (this.cursor !== undefined && event.id <= this.cursor) return;
    this.cursor = event.id;
    this.deliver(event);
  }
}
