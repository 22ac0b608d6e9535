/*
 * The protocol's front door: what a client of Fluxo — the SDK, a socket.io-client application, the
 * load tools — imports. It re-exports the data (model.ts) and the socket contract (contract.ts, as
 * types only: its values bring zod), and holds the version, the room-stream rules and the HTTP
 * API's shapes. Nothing here needs anything at run time but model.ts.
 */
import type { TransitionRequest } from './contract.js';
import type { FluxoEvent, Process, Role } from './model.js';

export type * from './contract.js';
export * from './model.js';

/**
 * The version of the protocol — the socket contract (contract.ts), the data (model.ts) and the HTTP
 * API's shapes below — sent as `hello.protocol`. `MAJOR.MINOR`: the minor grows with additions a
 * client written for an older minor can ignore (an optional field, an event, a route); the major
 * grows when such a client would misread the server (a field removed, renamed or given another
 * meaning). A client works with any minor of its own major and must stop on another major (the SDK
 * gives up with `protocol_mismatch`). A server whose `hello` has no `protocol` predates versioning
 * and speaks 1.0.
 */
export const PROTOCOL_VERSION = '1.0';

/*
 * ## Room streams: how a client gets every event of a room exactly once and in order
 *
 * Each room is a stream. Every event carries, for each room it belongs to, its **offset** in that
 * room: `offsets[i]` is its position in `rooms[i]` — 1 for the room's first event, then +1 for
 * each next one, with no hole, assigned in the committing transaction and stored in the event log.
 * Event `id`s are per tenant: a room sees only some of them, so ids tell order, never gaps;
 * offsets tell both.
 *
 * Live events may arrive out of order (commits on several nodes are published independently) and
 * may be missing (a Redis outage, a node that died between commit and publish). The rules, which
 * the SDK (shared/sdk) follows and a plain socket.io-client user should too, per room:
 * 1. Keep the room's position: the `offset` and `id` of the last event applied, and the `epoch`.
 * 2. An event whose offset is ≤ the position: a repeat (a socket in two of its rooms gets it once
 *    per room; replay and live overlap) — drop it.
 * 3. Offset = position + 1: apply it, then any held events that follow on.
 * 4. Offset > position + 1: a gap. Hold the event; if the gap is still open after a short wait
 *    (the SDK waits 500 ms), subscribe again with `after` = the position's `id`: the ack replays
 *    every stored event of the room after it, in order.
 * 5. On every (re)subscribe ack: if `position.epoch` differs from yours, your position means
 *    nothing in this log (it was recreated or restored): reload the room's state from the HTTP API
 *    and go on from `position`. If the replay's first event is not at your offset + 1, or the
 *    replay is empty while `position.offset` is beyond yours, the events in between were removed
 *    by retention (EVENT_RETENTION_MONTHS): reload likewise. Otherwise nothing was lost.
 * 6. Resubscribe after every reconnect and on `resync`, from the position of rule 1 — never from
 *    a position moved forward past a gap. A room the server took you out of (`server:unsubscribe`)
 *    is the exception: forget it; it is subscribed again only when the application asks.
 */

/*
 * The HTTP API's requests and answers, as the SDK's HTTP helpers take and return them (an answer's
 * body is `{ data }`, or `{ error }` with a catalog code). The zod schemas in shared/schemas.ts check
 * the requests and are what /openapi.json is generated from; test/integration/openapi.test.ts checks
 * that these types and those schemas agree.
 */

/** POST /api/workflows (admin). */
export interface CreateWorkflowRequest {
  name: string;
  stages: string[];
  transitions: Record<string, string[]>;
}

/** POST /api/processes (editor). */
export interface CreateProcessRequest {
  workflowId: string;
  title: string;
  /** @default the workflow's first stage */
  stage?: string;
  assignee?: string | null;
  data?: Record<string, unknown>;
}

/** GET /api/processes query. */
export interface ListProcessesRequest {
  workflowId?: string;
  stage?: string;
  assignee?: string;
  /** 1–500. @default 50 */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** Also count the matching processes (`total`); counting reads every matching row, so ask once, not per page. */
  total?: boolean;
}

/** A page of GET /api/processes (its body: `{ data: items, nextCursor, total? }`). */
export interface ProcessPage {
  items: Process[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
  /** How many processes match the filters, when `total` was asked for. */
  total?: number;
}

/** POST /api/processes/:id/transition body: a TransitionRequest whose process id is in the path. */
export type TransitionBody = Omit<TransitionRequest, 'processId'>;

/** GET /api/events query: the stored events of a room (replay, history). */
export interface EventsRequest {
  room: string;
  /** Events with an id greater than this. @default 0 */
  after?: number;
  /** With it, the newest `limit` events with `after` < id < `before`, still in id order. */
  before?: number;
  /** 1–1000. @default 100 */
  limit?: number;
}

/** A page of GET /api/events (its body: `{ data: events, next }`). */
export interface EventPage {
  events: FluxoEvent[];
  /**
   * Where the next page starts, null on the last one: pass it as `after` (or, paging backwards with
   * `before`, as the next `before`: it is then the page's first id). A page holds at most `limit`
   * events and about 1 MiB of their data (the first event whatever its size), so follow `next`
   * rather than comparing the page's length with `limit`.
   */
  next: number | null;
}

/** GET /api/me: who the credentials say you are. */
export interface Me {
  userId: string;
  tenant: string;
  role: Role;
  name: string | null;
  /** Token expiry, seconds since epoch. */
  exp: number;
}
