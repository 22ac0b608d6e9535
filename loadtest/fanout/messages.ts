/** IPC between the fan-out driver (parent) and its client processes. */

export interface SubscriberSpec {
  token: string;
  /** Tenant-relative room to subscribe to. */
  room: string;
  /** Key of the room in the run (the driver's `expected` map uses it). */
  roomKey: string;
  localAddress?: string;
}

export interface StartMessage {
  type: 'start';
  url: string;
  subscribers: SubscriberSpec[];
  /** Connections per second this process opens. */
  connectRate: number;
  progressMs: number;
  /** Test hook: subscriber 0 of this process discards the n-th (1-based) event it receives. */
  dropNth?: number;
}

export interface FinishMessage {
  type: 'finish';
  /** Per room key: every event id the publishers were told was committed. */
  expected: Record<string, number[]>;
}

export type ToWorker = StartMessage | FinishMessage | { type: 'exit' };

export interface ReadyMessage {
  type: 'ready';
  connected: number;
  failed: number;
  /** Encoded histogram of connect+subscribe time, µs. */
  connectHist: string;
  errors: Record<string, number>;
}

export interface ProgressMessage {
  type: 'progress';
  /** Cumulative. */
  received: number;
  duplicates: number;
  disconnects: number;
  /** Encoded latency histogram of this interval only, µs. */
  hist: string;
}

export interface MissingReport {
  roomKey: string;
  /** Index of the subscriber in its process, and the process index (filled by the driver). */
  subscriber: string;
  ids: number[];
}

export interface ResultMessage {
  type: 'result';
  received: number;
  duplicates: number;
  /** Received ids that no publisher reported (someone else's traffic). */
  unexpected: number;
  missingTotal: number;
  missing: MissingReport[];
}

export type FromWorker = ReadyMessage | ProgressMessage | ResultMessage;
