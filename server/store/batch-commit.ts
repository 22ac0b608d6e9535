import { and, asc, eq, inArray, or, type SQL, sql } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import type { FluxoEvent, TransitionRequest, TransitionResult } from '../../shared/protocol.js';
import { movesFrom } from '../../shared/workflow-moves.js';
import { AppError } from '../errors.js';
import { type EventDraft, stampEvents } from './event-stamps.js';
import type { Outcome } from './group-commit.js';
import { toEvent, toProcess } from './rows.js';
import { events, idempotencyKeys, processes, workflows } from './schema.js';
import type { Db } from './sql-store.js';
import type { Actor, CustomEventInput } from './store.js';

/** A write that goes through group commit. */
export type WriteItem =
  | { kind: 'append'; tenant: string; inputs: ResolvedAppend[] }
  | { kind: 'transition'; actor: Actor; req: TransitionRequest };

/** A custom event whose room was already parsed. */
export interface ResolvedAppend extends Omit<CustomEventInput, 'tenant'> {
  processId: string | null;
  workflowId: string | null;
}

export type WriteResult = { kind: 'append'; events: FluxoEvent[] } | { kind: 'transition'; result: TransitionResult };

type StoredResult = Omit<TransitionResult, 'replayed'>;
type ProcessRow = typeof processes.$inferSelect;

const key = (tenant: string, id: string) => `${tenant}\0${id}`;

function roomsOf(processId: string, workflowId: string): string[] {
  return [`process:${processId}`, `workflow:${workflowId}`, 'tenant'];
}

/** `(tenant_id, col) IN …` for pairs, grouped by tenant so each group can use the primary key. */
function pairsIn(tenantCol: PgColumn, idCol: PgColumn, pairs: [string, string][]): SQL {
  const byTenant = new Map<string, string[]>();
  for (const [t, id] of pairs) byTenant.set(t, [...(byTenant.get(t) ?? []), id]);
  return or(...[...byTenant].map(([t, ids]) => and(eq(tenantCol, t), inArray(idCol, [...new Set(ids)]))))!;
}

/**
 * Commits a batch of writes in ONE transaction with a fixed number of statements, whatever the
 * batch size: claim idempotency keys, lock the processes (in key order, so concurrent batches
 * cannot deadlock on them), check every transition in memory in arrival order (a second move of
 * the same card sees the first), write the final rows, then — last, as in single writes — take
 * the tenants' ids in one upsert and insert all events. An item's own failure (not_found,
 * version_conflict, …) is its outcome; no statement fails because of one item's input, so the
 * others still commit. Anything that does throw fails the whole batch (the caller retries items
 * alone).
 */
export async function commitBatch(tx: Db, items: WriteItem[]): Promise<Outcome<WriteResult>[]> {
  const outcomes: (Outcome<WriteResult> | undefined)[] = items.map(() => undefined);
  const fail = (i: number, error: AppError) => {
    outcomes[i] = { ok: false, error };
  };

  // 1. Idempotency. Within the batch, a repeated (tenant, requestId) follows its first occurrence.
  const leaderOf = new Map<string, number>();
  const followers: [number, number][] = [];
  const claims: { tenantId: string; requestId: string; index: number }[] = [];
  items.forEach((item, i) => {
    if (item.kind !== 'transition' || !item.req.requestId) return;
    const k = key(item.actor.tenant, item.req.requestId);
    const leader = leaderOf.get(k);
    if (leader !== undefined) followers.push([i, leader]);
    else {
      leaderOf.set(k, i);
      claims.push({ tenantId: item.actor.tenant, requestId: item.req.requestId, index: i });
    }
  });
  const isFollower = new Set(followers.map(([f]) => f));
  claims.sort((a, b) => (a.tenantId === b.tenantId ? (a.requestId < b.requestId ? -1 : 1) : a.tenantId < b.tenantId ? -1 : 1));
  const claimed = new Set<number>();
  if (claims.length > 0) {
    const got = await tx
      .insert(idempotencyKeys)
      .values(claims.map((c) => ({ tenantId: c.tenantId, requestId: c.requestId, result: null })))
      .onConflictDoNothing()
      .returning({ tenantId: idempotencyKeys.tenantId, requestId: idempotencyKeys.requestId });
    const mine = new Set(got.map((r) => key(r.tenantId, r.requestId)));
    const taken = claims.filter((c) => !mine.has(key(c.tenantId, c.requestId)));
    for (const c of claims) if (mine.has(key(c.tenantId, c.requestId))) claimed.add(c.index);
    if (taken.length > 0) {
      const stored = await tx
        .select({ tenantId: idempotencyKeys.tenantId, requestId: idempotencyKeys.requestId, result: idempotencyKeys.result })
        .from(idempotencyKeys)
        .where(
          pairsIn(
            idempotencyKeys.tenantId,
            idempotencyKeys.requestId,
            taken.map((c) => [c.tenantId, c.requestId]),
          ),
        );
      const byKey = new Map(stored.map((s) => [key(s.tenantId, s.requestId), s.result as StoredResult | null]));
      for (const c of taken) {
        const result = byKey.get(key(c.tenantId, c.requestId));
        if (result) outcomes[c.index] = { ok: true, value: { kind: 'transition', result: { ...result, replayed: true } } };
        // Claimed by a write not committed yet (or whose result is not stored): retryable, unlike `conflict`.
        else fail(c.index, new AppError('request_in_progress'));
      }
    }
  }

  // 2. Lock and read what the transitions touch.
  const todo = items
    .map((item, i) => ({ item, i }))
    .filter((x): x is { item: Extract<WriteItem, { kind: 'transition' }>; i: number } => x.item.kind === 'transition')
    .filter(({ i }) => outcomes[i] === undefined && !isFollower.has(i));
  const rows = new Map<string, ProcessRow>();
  const flows = new Map<string, Record<string, string[]>>();
  if (todo.length > 0) {
    const locked = await tx
      .select()
      .from(processes)
      .where(
        pairsIn(
          processes.tenantId,
          processes.id,
          todo.map(({ item }) => [item.actor.tenant, item.req.processId]),
        ),
      )
      .orderBy(asc(processes.tenantId), asc(processes.id))
      .for('update');
    for (const r of locked) rows.set(key(r.tenantId, r.id), r);
    if (locked.length > 0) {
      const wfs = await tx
        .select({ tenantId: workflows.tenantId, id: workflows.id, transitions: workflows.transitions })
        .from(workflows)
        .where(
          pairsIn(
            workflows.tenantId,
            workflows.id,
            locked.map((r) => [r.tenantId, r.workflowId]),
          ),
        );
      for (const w of wfs) flows.set(key(w.tenantId, w.id), w.transitions);
    }
  }

  // 3. Decide, in arrival order, against the state left by earlier items of the batch.
  const now = new Date();
  const pending: { index: number; tenant: string; values: EventDraft; process?: ProcessRow }[] = [];
  const dirty = new Set<string>();
  for (const [i, item] of items.entries()) {
    if (outcomes[i] !== undefined || isFollower.has(i)) continue;
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
            actor: input.actor,
            data: input.data,
          },
        });
      }
      continue;
    }
    const { actor, req } = item;
    const k = key(actor.tenant, req.processId);
    const row = rows.get(k);
    const allowed = row && flows.get(key(actor.tenant, row.workflowId));
    if (!row) fail(i, new AppError('not_found', 'No such process.'));
    else if (req.expectedVersion !== undefined && req.expectedVersion !== row.version) {
      fail(i, new AppError('version_conflict', undefined, { current: toProcess(row) }));
    } else if (!allowed) fail(i, new AppError('not_found', 'No such workflow.'));
    else if (!movesFrom(allowed, row.stage).includes(req.to)) {
      fail(i, new AppError('invalid_transition', `The workflow does not allow ${row.stage} → ${req.to}.`));
    }
    if (!row || outcomes[i] !== undefined) continue;
    const next: ProcessRow = {
      ...row,
      stage: req.to,
      version: row.version + 1,
      data: { ...row.data, ...(req.data ?? {}) },
      updatedAt: now,
    };
    rows.set(k, next);
    dirty.add(k);
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

  // 4. Final state of every moved process, one statement.
  if (dirty.size > 0) {
    const values = [...dirty].map((k) => {
      const r = rows.get(k)!;
      return sql`(${r.tenantId}, ${r.id}, ${r.stage}, ${r.version}::int, ${JSON.stringify(r.data)}::jsonb, ${r.updatedAt.toISOString()}::timestamptz)`;
    });
    await tx.execute(sql`UPDATE processes AS p SET stage = v.stage, version = v.version, data = v.data, updated_at = v.updated_at
      FROM (VALUES ${sql.join(values, sql`, `)}) AS v(tenant_id, id, stage, version, data, updated_at)
      WHERE p.tenant_id = v.tenant_id AND p.id = v.id`);
  }

  // 5. Last: ids and room offsets (see event-stamps.ts), then all events in one insert.
  const inserted: FluxoEvent[] = [];
  if (pending.length > 0) {
    const rowsToInsert = await stampEvents(tx, pending);
    const back = await tx.insert(events).values(rowsToInsert).returning();
    const byKey = new Map(back.map((r) => [key(r.tenantId, String(r.id)), toEvent(r)]));
    for (const r of rowsToInsert) inserted.push(byKey.get(key(r.tenantId, String(r.id)))!);
  }

  // 6. Results: appends get their events in order; transitions their own process version.
  const stored = new Map<number, StoredResult>();
  pending.forEach((p, n) => {
    const event = inserted[n]!;
    if (p.process) {
      stored.set(p.index, { process: toProcess(p.process), event });
      return;
    }
    const o = outcomes[p.index];
    if (o?.ok && o.value.kind === 'append') o.value.events.push(event);
    else outcomes[p.index] = { ok: true, value: { kind: 'append', events: [event] } };
  });
  for (const [index, result] of stored)
    outcomes[index] = { ok: true, value: { kind: 'transition', result: { ...result, replayed: false } } };

  // 7. Keys: store results of what committed; release claims of what failed (as a rollback would).
  const done = [...claimed].filter((i) => stored.has(i));
  const released = [...claimed].filter((i) => !stored.has(i));
  if (done.length > 0) {
    const values = done.map((i) => {
      const item = items[i] as Extract<WriteItem, { kind: 'transition' }>;
      return sql`(${item.actor.tenant}, ${item.req.requestId!}, ${JSON.stringify(stored.get(i))}::jsonb)`;
    });
    await tx.execute(sql`UPDATE idempotency_keys AS k SET result = v.result
      FROM (VALUES ${sql.join(values, sql`, `)}) AS v(tenant_id, request_id, result)
      WHERE k.tenant_id = v.tenant_id AND k.request_id = v.request_id`);
  }
  if (released.length > 0) {
    await tx.delete(idempotencyKeys).where(
      pairsIn(
        idempotencyKeys.tenantId,
        idempotencyKeys.requestId,
        released.map((i) => {
          const item = items[i] as Extract<WriteItem, { kind: 'transition' }>;
          return [item.actor.tenant, item.req.requestId!];
        }),
      ),
    );
  }

  // Followers: the leader's outcome, as a replay when it succeeded.
  for (const [f, leader] of followers) {
    const o = outcomes[leader];
    outcomes[f] =
      o?.ok && o.value.kind === 'transition'
        ? { ok: true, value: { kind: 'transition', result: { ...o.value.result, replayed: true } } }
        : o;
  }
  return outcomes.map((o) => o ?? { ok: false, error: new Error('batch commit: item left without an outcome') });
}
