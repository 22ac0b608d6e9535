import { connect, type FluxoClient, FluxoError } from '../../shared/sdk/index.js';
import type { ReaderRoom } from './check.js';

export interface ReaderOptions {
  name: string;
  /** Where the SDK connects: nginx through a source-address forwarder, so ip_hash places it. */
  url: string;
  token: string;
  rooms: string[];
}

export interface ReaderRoomRecord extends ReaderRoom {
  /** Codes of subscribes that were refused (each is tried again, as an application would). */
  refusals: string[];
}

/**
 * One SDK client (`connect` + `subscribe`, as an application uses them), recording every event
 * its handlers get, per room, in order. It does nothing to help the SDK: no dedup, no sorting.
 */
export class Reader {
  readonly client: FluxoClient;
  readonly rooms: ReaderRoomRecord[];
  /** Node ids it was connected to, in order (from the SDK's `connected` states). */
  readonly nodes: string[] = [];
  /** Times the SDK went back to `reconnecting`. */
  reconnects = 0;
  private closed = false;

  constructor(readonly o: ReaderOptions) {
    this.rooms = o.rooms.map((room) => ({ reader: o.name, room, delivered: [], refusals: [] }));
    this.client = connect({ url: o.url, token: o.token });
    this.client.on('state', (s) => {
      if (s.state === 'connected') this.nodes.push(s.nodeId);
      if (s.state === 'reconnecting') this.reconnects++;
    });
    // Reported through `ready` too; an application would log it.
    this.client.on('error', () => {});
  }

  /** Subscribes every room; resolves once each has its first ack (refused ones are subscribed again). */
  subscribeAll(): Promise<void> {
    return Promise.all(this.rooms.map((r) => this.subscribe(r))).then(() => {});
  }

  get ready(): boolean {
    return this.rooms.every((r) => r.readyAt !== undefined);
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }

  private async subscribe(r: ReaderRoomRecord): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      const unsubscribe = this.client.subscribe(r.room, (event) => r.delivered.push(event.id));
      try {
        const ack = await unsubscribe.ready;
        r.readyAt = Date.now();
        r.startId = startIdOf(ack);
        return;
      } catch (err) {
        r.refusals.push(err instanceof FluxoError ? err.code : String(err));
        await unsubscribe();
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 200 * 2 ** attempt)));
      }
    }
  }
}

/**
 * The room's position at subscribe, as an event id: every event of the room with a higher id is
 * the reader's. The ack carries it as `position.id` (the id of the room's last event, read after
 * joining); before per-room positions it was `cursor` (the tenant's last id, read after joining) —
 * both bound the start the same way, so whichever the server sends is used.
 */
export function startIdOf(ack: unknown): number | undefined {
  const a = ack as { position?: { id?: unknown }; cursor?: unknown };
  const id = a.position?.id ?? a.cursor;
  return typeof id === 'number' ? id : undefined;
}
