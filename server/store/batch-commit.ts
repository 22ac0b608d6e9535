import type { FluxoEvent, TransitionRequest, TransitionResult } from '../../shared/protocol.js';
import { movesFrom } from '../../shared/workflow-moves.js';
import { AppError } from '../errors.js';
import type { Db } from './db.js';
import { type EventDraft, type StampedEvent, stampEvents } from './event-stamps.js';
import type { Outcome } from './group-commit.js';
import { runPrepared, sendsInOrder } from './prepared.js';
import { roomsOf, toEvent, toProcess } from './rows.js';
import type { processes } from './schema.js';
import type { Actor, CustomEventInput } from './store.js';

/** A write that goes through group commit. */
export type WriteItem = AppendItem | TransitionItem;
type AppendItem = { kind: 'append'; tenant: string; inputs: ResolvedAppend[]; requestId?: string };
type TransitionItem = { kind: 'transition'; actor: Actor; req: TransitionRequest; maxDataBytes?: number | undefined };

/** A custom event whose room was already parsed. */
export interface ResolvedAppend extends Omit<CustomEventInput, 'tenant'> {
  processId: string | null;
  workflowId: string | null;
}

export type WriteResult = { kind: 'append'; events: FluxoEvent[]; replayed: boolean } | { kind: 'transition'; result: TransitionResult };

/**
 * What a claimed request id stores, by kind. An append's id is stored under `publish:<id>`, apart
 * from transitions' ids; a transition's id may still be spelt like that, so a stored result is
 * checked for the kind of the item that finds it.
 */
type StoredResult = Omit<TransitionResult, 'replayed'>;
type StoredAppend = { events: FluxoEvent[] };

type ProcessRow = typeof processes.$inferSelect;

/** What the steps of one batch share: its items and each item's outcome once decided. */
interface Batch {
  readonly items: readonly WriteItem[];
  readonly outcomes: (Outcome<WriteResult> | undefined)[];
  /** Item → the earlier item with the same (tenant, requestId), whose outcome it gets. */
  readonly followers: Map<number, number>;
  /** Items whose request id this batch claimed, and the key each claimed. */
  readonly claimed: Map<number, Claim>;
}

interface Claim {
  tenantId: string;
  /** As stored: an append's request id is prefixed (`publish:`). */
  requestId: string;
  index: number;
}

/** The key an item's request id is claimed under, or null when it has none. */
function claimKeyOf(item: WriteItem): { tenant: string; requestId: string } | null {
  if (item.kind === 'transition') return item.req.requestId ? { tenant: item.actor.tenant, requestId: item.req.requestId } : null;
  return item.requestId ? { tenant: item.tenant, requestId: `publish:${item.requestId}` } : null;
}

/**
 * The outcome a request gets from what its id stored: a replay when it is the same request (a
 * transition of the same process to the same stage by the same user; a publish of as many events,
 * each of the same type to the same room), else `conflict` — a result that answers another request
 * would tell its caller that a write happened that never did (Stripe's rule for idempotency keys).
 */
function replayOf(item: WriteItem, stored: unknown): Outcome<WriteResult> {
  if (item.kind === 'append' && stored !== null && typeof stored === 'object' && Array.isArray((stored as StoredAppend).events)) {
    const { events } = stored as StoredAppend;
    const same =
      events.length === item.inputs.length &&
      events.every((e, i) => e.type === item.inputs[i]!.type && e.rooms[0] === item.inputs[i]!.room);
    if (same) return { ok: true, value: { kind: 'append', events, replayed: true } };
  }
  if (item.kind === 'transition' && stored !== null && typeof stored === 'object' && 'process' in stored && 'event' in stored) {
    const { process, event } = stored as StoredResult;
    if (process.id === item.req.processId && event.toStage === item.req.to && event.actor === item.actor.userId) {
      return { ok: true, value: { kind: 'transition', result: { ...(stored as StoredResult), replayed: true } } };
    }
  }
  return { ok: false, error: new AppError('conflict', 'This requestId was used for another request.') };
}

/** The processes the batch's transitions touch, as the batch leaves them. */
interface Touched {
  /** By key(tenant, id): the locked rows, replaced by their next state as transitions apply. */
  readonly rows: Map<string, ProcessRow>;
  /** Allowed moves of their workflows, by key(tenant, workflowId). */
  readonly flows: Map<string, Record<string, string[]>>;
  /** Keys of the rows that moved. */
  readonly moved: Set<string>;
}

/** An event to insert, for the item at `index`; `process` is the moved row of a transition. */
interface PendingEvent {
  index: number;
  tenant: string;
  values: EventDraft;
  process?: ProcessRow;
}

const key = (tenant: string, id: string) => `${tenant}\0${id}`;

function fail(batch: Batch, i: number, error: AppError): void {
  batch.outcomes[i] = { ok: false, error };
}

/**
 * Commits a batch of writes in ONE transaction with a fixed number of statements, whatever the
 * batch size: claim idempotency keys, lock the processes (in key order, so concurrent batches
 * cannot deadlock on them), check every transition in memory in arrival order (a second move of
 * the same card sees the first), then — last, as in single writes — take the tenants' ids in one
 * upsert, and write the final rows and insert all events in one more statement. An item's own failure (not_found,
 * version_conflict, …) is its outcome; no statement fails because of one item's input, so the
 * others still commit. Anything that does throw fails the whole batch (the caller retries items
 * alone).
 */
export async function commitBatch(tx: Db, items: WriteItem[]): Promise<CommittedBatch> {
  const batch: Batch = { items, outcomes: items.map(() => undefined), followers: new Map(), claimed: new Map() };
  const claims = claimsOf(batch);
  // Steps 1 and 2 go out together (one round trip): the lock does not wait for the claims, so it
  // may lock a process whose transition turns out to be a replay, which then does not move it.
  const [, touched] = await Promise.all([claimRequestIds(tx, batch, claims), lockProcesses(tx, batch)]);
  const pending = decide(batch, touched);
  const { stamped, at } = await stampEvents(tx, pending);
  settle(batch, pending, stamped, at);
  followLeaders(batch);
  // Steps 5 and 7 need no answer: sent together, and where the driver keeps them ahead of the
  // COMMIT (prepared.ts), the transaction commits right behind them without waiting.
  const written = Promise.all([insertEvents(tx, stamped, at, movedRows(touched)), finishClaims(tx, batch)]).then(() => {});
  if (!sendsInOrder(tx)) await written;
  // Handled here too: a batch whose COMMIT the caller never waits for (its deadline passed) must
  // not leave an unhandled rejection behind.
  written.catch(() => {});
  return {
    outcomes: batch.outcomes.map((o) => o ?? { ok: false, error: new Error('batch commit: item left without an outcome') }),
    written,
  };
}

/** What `commitBatch` decided, and the answer of its last statements. */
export interface CommittedBatch {
  /** Each item's outcome, valid once the transaction committed and `written` resolved. */
  outcomes: Outcome<WriteResult>[];
  /**
   * Settles when the batch's last statements are answered — on postgres.js possibly after the
   * transaction's COMMIT was sent. A rejection means they failed, and then that COMMIT rolled back:
   * nothing of the batch was written.
   */
  written: Promise<void>;
}

/**
 * Step 1 takes a transaction-scoped advisory lock per request id, in key order: a concurrent batch
 * with the same id (on any node) waits here until this one committed or rolled back, and then
 * finds its stored result. Nothing is written for a claim until the batch knows the result (step
 * 7 inserts the row whole): no placeholder row, no update of it, no delete when the write fails.
 * Fixed texts, one jsonb parameter (see step 2): prepared once per connection.
 */
const CLAIM_LOCKS = `SELECT pg_advisory_xact_lock(k.h) FROM (
    SELECT DISTINCT hashtextextended(x.t || chr(31) || x.r, 0) AS h FROM jsonb_to_recordset($1::jsonb) AS x(t text, r text)
    ORDER BY h
  ) AS k`;
/**
 * What the ids store. A statement of its own, sent right behind CLAIM_LOCKS: its snapshot is taken
 * once the locks are held, so it sees a result another batch committed while this one waited.
 */
const CLAIMED_RESULTS = `SELECT k.tenant_id, k.request_id, k.result
  FROM jsonb_to_recordset($1::jsonb) AS x(t text, r text)
  CROSS JOIN LATERAL (
    SELECT k.tenant_id, k.request_id, k.result FROM idempotency_keys AS k WHERE k.tenant_id = x.t AND k.request_id = x.r LIMIT 1
  ) AS k`;
/**
 * Step 7: the results of the claims that committed. No ON CONFLICT: under the lock nobody else can
 * insert the same id, so a conflict is a claim made without it — the batch then fails and each
 * write is retried alone, where it finds that claim.
 */
const STORE_RESULTS = `INSERT INTO idempotency_keys (tenant_id, request_id, result)
  SELECT v.t, v.r, v.result FROM jsonb_to_recordset($1::jsonb) AS v(t text, r text, result jsonb)`;

/** The request ids to claim, one per (tenant, requestId); a repeat within the batch follows its first occurrence. */
function claimsOf(batch: Batch): Claim[] {
  const leaderOf = new Map<string, number>();
  const claims: Claim[] = [];
  batch.items.forEach((item, i) => {
    const claim = claimKeyOf(item);
    if (!claim) return;
    const k = key(claim.tenant, claim.requestId);
    const leader = leaderOf.get(k);
    if (leader !== undefined) batch.followers.set(i, leader);
    else {
      leaderOf.set(k, i);
      claims.push({ tenantId: claim.tenant, requestId: claim.requestId, index: i });
    }
  });
  // Any order: CLAIM_LOCKS takes the locks in the order of their hashes, the same in every batch.
  return claims;
}

/**
 * Step 1, idempotency: locks the request ids and reads what they stored. An item whose id stored a
 * result gets it as a replay; one whose id has a row without a result (claimed by a write that
 * has not stored it) gets request_in_progress; the others are this batch's to store (step 7).
 * Both statements are sent before waiting, so they go out with step 2's.
 */
async function claimRequestIds(tx: Db, batch: Batch, claims: Claim[]): Promise<void> {
  if (claims.length === 0) return;
  const pairs = JSON.stringify(claims.map((c) => ({ t: c.tenantId, r: c.requestId })));
  const [, stored] = await Promise.all([runPrepared(tx, CLAIM_LOCKS, [pairs]), runPrepared(tx, CLAIMED_RESULTS, [pairs])]);
  const byKey = new Map(stored.map((s) => [key(String(s.tenant_id), String(s.request_id)), s.result == null ? null : jsonValue(s.result)]));
  for (const c of claims) {
    const k = key(c.tenantId, c.requestId);
    if (!byKey.has(k)) batch.claimed.set(c.index, c);
    else {
      const result = byKey.get(k);
      if (result != null) batch.outcomes[c.index] = replayOf(batch.items[c.index]!, result);
      // Claimed by a write not committed yet (or whose result is not stored): retryable, unlike `conflict`.
      else fail(batch, c.index, new AppError('request_in_progress'));
    }
  }
}

const LOCK_PROCESSES = `SELECT p.tenant_id, p.id, p.workflow_id, p.title, p.stage, p.assignee, p.data, p.version,
    p.created_at, p.updated_at, w.transitions
  FROM (SELECT DISTINCT x.t, x.id FROM jsonb_to_recordset($1::jsonb) AS x(t text, id text) ORDER BY x.t, x.id) AS x
  CROSS JOIN LATERAL (
    SELECT p.* FROM processes AS p WHERE p.tenant_id = x.t AND p.id = x.id LIMIT 1 FOR UPDATE
  ) AS p
  LEFT JOIN LATERAL (
    SELECT w.transitions FROM workflows AS w WHERE w.tenant_id = p.tenant_id AND w.id = p.workflow_id LIMIT 1
  ) AS w ON true`;

/**
 * Step 2: locks the processes the undecided transitions move, in key order (the keys sorted, each
 * row locked as its key comes), and reads their workflows' moves in the same statement. Each key
 * is a lookup of its own (LATERAL … LIMIT 1: the LIMIT keeps the planner from flattening it back
 * into a join), which can only be planned as an index probe: a prepared statement keeps the plan
 * it got first, and a join planned while `processes` was small stays a sequential scan after it
 * grew, until an ANALYZE (measured: 0.5 ms a batch of 30 becomes 57 at 300,000 rows;
 * CLAIMED_RESULTS, on a table that grows by every keyed write, is written the same way). One
 * jsonb parameter whatever the batch size, so the text never changes and is prepared once per
 * connection (prepared.ts), as is step 5's.
 */
async function lockProcesses(tx: Db, batch: Batch): Promise<Touched> {
  const touched: Touched = { rows: new Map(), flows: new Map(), moved: new Set() };
  const wanted = new Map<string, { t: string; id: string }>();
  batch.items.forEach((item, i) => {
    if (item.kind === 'transition' && batch.outcomes[i] === undefined && !batch.followers.has(i)) {
      wanted.set(key(item.actor.tenant, item.req.processId), { t: item.actor.tenant, id: item.req.processId });
    }
  });
  if (wanted.size === 0) return touched;
  const locked = await runPrepared(tx, LOCK_PROCESSES, [JSON.stringify([...wanted.values()])]);
  for (const r of locked) {
    const row = processRow(r);
    touched.rows.set(key(row.tenantId, row.id), row);
    if (r.transitions != null) touched.flows.set(key(row.tenantId, row.workflowId), jsonValue(r.transitions));
  }
  return touched;
}

/** A jsonb column of a raw `execute`: parsed by postgres.js, and by PGlite. */
const jsonValue = <T>(v: unknown): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;
const dateValue = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));

/** A `processes` row of a raw `execute`, as drizzle's select would have typed it. */
function processRow(r: Record<string, unknown>): ProcessRow {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    workflowId: String(r.workflow_id),
    title: String(r.title),
    stage: String(r.stage),
    assignee: r.assignee == null ? null : String(r.assignee),
    data: jsonValue(r.data),
    version: Number(r.version),
    createdAt: dateValue(r.created_at),
    updatedAt: dateValue(r.updated_at),
  };
}

/** Why `req` may not move `row` (null: it may). */
function refusal(row: ProcessRow, allowed: Record<string, string[]> | undefined, req: TransitionRequest): AppError | null {
  if (req.expectedVersion !== undefined && req.expectedVersion !== row.version) {
    return new AppError('version_conflict', undefined, { current: toProcess(row) });
  }
  if (!allowed) return new AppError('not_found', 'No such workflow.');
  if (!movesFrom(allowed, row.stage).includes(req.to)) {
    return new AppError('invalid_transition', `The workflow does not allow ${row.stage} → ${req.to}.`);
  }
  return null;
}

/**
 * Step 3, in memory: decides every undecided item in arrival order, each transition against the
 * state the earlier ones left, and drafts the events of those that go ahead.
 */
function decide(batch: Batch, touched: Touched): PendingEvent[] {
  const now = new Date();
  const pending: PendingEvent[] = [];
  for (const [i, item] of batch.items.entries()) {
    if (batch.outcomes[i] !== undefined || batch.followers.has(i)) continue;
    if (item.kind === 'append') {
      for (const input of item.inputs) {
        pending.push({
          index: i,
          tenant: item.tenant,
          values: {
            type: input.type,
            processId: input.processId,
            workflowId: input.workflowId,
            rooms: [input.room],
            fromStage: null,
            toStage: null,
            version: null,
            actor: input.actor,
            data: input.data,
          },
        });
      }
      continue;
    }
    const { actor, req } = item;
    const k = key(actor.tenant, req.processId);
    const row = touched.rows.get(k);
    if (!row) {
      fail(batch, i, new AppError('not_found', 'No such process.'));
      continue;
    }
    const refused = refusal(row, touched.flows.get(key(actor.tenant, row.workflowId)), req);
    if (refused) {
      fail(batch, i, refused);
      continue;
    }
    const data = req.data ? { ...row.data, ...req.data } : row.data;
    // Only a transition that adds data can take the process past the bound (each before it kept it within).
    if (req.data && item.maxDataBytes !== undefined && JSON.stringify(data).length > item.maxDataBytes) {
      fail(batch, i, new AppError('payload_too_large', `The process's data would pass ${item.maxDataBytes} bytes as JSON.`));
      continue;
    }
    const next: ProcessRow = { ...row, stage: req.to, version: row.version + 1, data, updatedAt: now };
    touched.rows.set(k, next);
    touched.moved.add(k);
    pending.push({
      index: i,
      tenant: actor.tenant,
      process: next,
      values: {
        type: 'process.transitioned',
        processId: row.id,
        workflowId: row.workflowId,
        rooms: roomsOf(row.id, row.workflowId),
        fromStage: row.stage,
        toStage: req.to,
        version: next.version,
        actor: actor.userId,
        data: req.data ?? {},
      },
    });
  }
  return pending;
}

/**
 * Step 4, in memory: the final state of every moved process, as the jsonb parameter of step 5's
 * statement, which writes them. Every moved process has an event, so step 5 always runs when
 * there is something to write; the update takes no lock the batch does not hold (step 2).
 */
function movedRows(touched: Touched): string {
  const values = [...touched.moved].map((k) => {
    const r = touched.rows.get(k)!;
    return { t: r.tenantId, id: r.id, stage: r.stage, version: r.version, data: r.data, at: r.updatedAt.toISOString() };
  });
  return JSON.stringify(values);
}

/**
 * Step 4's update and step 5's insert, one statement of fixed text (see step 2): one round trip less.
 * The events' record names are the stamped rows' own keys (quoted camelCase), so the rows go into
 * the jsonb parameter as they are, with no per-row copy. Nothing is returned: the events are
 * complete once stamped, so nothing waits for this statement's answer but the COMMIT.
 */
const UPDATE_AND_INSERT = `WITH moved AS (
    UPDATE processes AS p SET stage = v.stage, version = v.version, data = v.data, updated_at = v.at
    FROM jsonb_to_recordset($2::jsonb) AS v(t text, id text, stage text, version int, data jsonb, at timestamptz)
    WHERE p.tenant_id = v.t AND p.id = v.id
  )
  INSERT INTO events (tenant_id, id, type, process_id, workflow_id, rooms, offsets, from_stage, to_stage, version, actor, data,
    occurred_at)
  SELECT x."tenantId", x.id, x.type, x."processId", x."workflowId", x.rooms, x.offsets, x."fromStage", x."toStage", x.version,
    x.actor, x.data, $3::timestamptz
  FROM jsonb_to_recordset($1::jsonb) AS x("tenantId" text, id bigint, type text, "processId" text, "workflowId" text,
    rooms text[], offsets bigint[], "fromStage" text, "toStage" text, version int, actor text, data jsonb)`;

/**
 * Step 5, last: all events in one insert that also writes step 4's rows (a data-modifying WITH
 * runs exactly once, read or not), at the time the stamp took.
 */
async function insertEvents(tx: Db, stamped: StampedEvent[], at: Date, moved: string): Promise<void> {
  if (stamped.length === 0) return;
  await runPrepared(tx, UPDATE_AND_INSERT, [JSON.stringify(stamped), moved, at.toISOString()]);
}

/** Step 6: appends get their events in order, transitions their own process version. */
function settle(batch: Batch, pending: PendingEvent[], stamped: StampedEvent[], at: Date): void {
  pending.forEach((p, n) => {
    // The stamped rows are this batch's own: each becomes a full row by taking its time in place.
    const event = toEvent(Object.assign(stamped[n]!, { occurredAt: at }));
    if (p.process) {
      batch.outcomes[p.index] = {
        ok: true,
        value: { kind: 'transition', result: { process: toProcess(p.process), event, replayed: false } },
      };
      return;
    }
    const o = batch.outcomes[p.index];
    if (o?.ok && o.value.kind === 'append') o.value.events.push(event);
    else batch.outcomes[p.index] = { ok: true, value: { kind: 'append', events: [event], replayed: false } };
  });
}

/** What a committed item stores under its request id (see replayOf). */
function storedOf(value: WriteResult): StoredResult | StoredAppend {
  if (value.kind === 'append') return { events: value.events };
  const { replayed: _, ...result } = value.result;
  return result;
}

/** Step 7: stores the results of the claims whose write succeeded; a failed one leaves nothing behind. */
async function finishClaims(tx: Db, batch: Batch): Promise<void> {
  const done: { t: string; r: string; result: StoredResult | StoredAppend }[] = [];
  for (const [i, c] of batch.claimed) {
    const o = batch.outcomes[i];
    if (o?.ok) done.push({ t: c.tenantId, r: c.requestId, result: storedOf(o.value) });
  }
  if (done.length > 0) await runPrepared(tx, STORE_RESULTS, [JSON.stringify(done)]);
}

/** Step 8: a repeated request id gets its first occurrence's outcome, as a replay when it succeeded. */
function followLeaders(batch: Batch): void {
  for (const [f, leader] of batch.followers) {
    const o = batch.outcomes[leader];
    batch.outcomes[f] = o?.ok ? replayOf(batch.items[f]!, storedOf(o.value)) : o;
  }
}
