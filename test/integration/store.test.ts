import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { AppError } from '../../server/errors.js';
import { createStore, type SqlStore } from '../../server/store/index.js';
import type { Actor } from '../../server/store/store.js';
import { ERRORS } from '../../shared/errors.js';
import type { FluxoEvent } from '../../shared/protocol.js';

/** One behavioural suite, run against embedded PGlite and a real Postgres 15. */
const backends = [
  { name: 'pglite', start: async () => ({ store: await createStore(), pg: null as PostgresHandle | null }) },
  {
    name: 'postgres',
    start: async () => {
      const pg = await startPostgres();
      return { store: await createStore({ databaseUrl: pg.url, poolSize: 12 }), pg };
    },
  },
] as const;

const STAGES = { name: 'Review', stages: ['draft', 'review', 'done'], transitions: { draft: ['review'], review: ['done', 'draft'] } };

async function rejection(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

describe.each(backends)('store on $name', ({ name, start }) => {
  let store: SqlStore;
  let pg: PostgresHandle | null = null;

  beforeAll(async () => {
    ({ store, pg } = await start());
    await store.migrate();
    await store.migrate(); // idempotent
    await store.ensurePartitions(new Date());
  });
  afterAll(async () => {
    await store?.close();
    await pg?.stop();
  });

  /** A fresh tenant per test keeps tests independent. */
  async function setup() {
    const actor: Actor = { tenant: `t-${randomUUID().slice(0, 8)}`, userId: 'alice' };
    const wf = await store.createWorkflow(actor.tenant, STAGES);
    const { process, event } = await store.createProcess(actor, { workflowId: wf.id, title: 'Spec' });
    return { actor, wf, process, event };
  }

  it('records applied migrations once', async () => {
    const rows = await store.query(sql`SELECT name FROM fluxo_migrations ORDER BY name`);
    const files = (await readdir(new URL('../../migrations/', import.meta.url))).filter((f) => f.endsWith('.sql')).sort();
    expect(files.slice(0, 2)).toEqual(['0001_init.sql', '0002_room_streams.sql']);
    expect(rows.map((r) => r.name)).toEqual(files);
    expect(store.kind).toBe(name);
  });

  it('creates workflows and processes with a process.created event', async () => {
    const { actor, wf, process, event } = await setup();
    expect(wf.stages).toEqual(STAGES.stages);
    expect(await store.getWorkflow(actor.tenant, wf.id)).toEqual(wf);
    expect(await store.listWorkflows(actor.tenant)).toEqual([wf]);
    expect(process).toMatchObject({ workflowId: wf.id, title: 'Spec', stage: 'draft', version: 1, assignee: null, data: {} });
    expect(event).toMatchObject({
      id: 1,
      type: 'process.created',
      processId: process.id,
      workflowId: wf.id,
      toStage: 'draft',
      version: 1,
      actor: 'alice',
      rooms: [`process:${process.id}`, `workflow:${wf.id}`, 'tenant'],
    });
    expect(new Date(event.at).toISOString()).toBe(event.at);
    expect(await store.getProcess(actor.tenant, process.id, { fresh: true })).toEqual(process);
  });

  it('transitions, bumps the version and appends an event', async () => {
    const { actor, process } = await setup();
    const res = await store.transition(actor, { processId: process.id, to: 'review', expectedVersion: 1, data: { note: 'go' } });
    expect(res.replayed).toBe(false);
    expect(res.process).toMatchObject({ stage: 'review', version: 2, data: { note: 'go' } });
    expect(res.event).toMatchObject({ id: 2, type: 'process.transitioned', fromStage: 'draft', toStage: 'review', version: 2 });
    expect(await store.getProcess(actor.tenant, process.id)).toEqual(res.process);
  });

  it('refuses a stale expectedVersion with version_conflict and the current state', async () => {
    const { actor, process } = await setup();
    await store.transition(actor, { processId: process.id, to: 'review', expectedVersion: 1 });
    const err = await rejection(store.transition(actor, { processId: process.id, to: 'done', expectedVersion: 1 }));
    expect(err.code).toBe('version_conflict');
    expect(err.status).toBe(409);
    expect(err.toBody().current).toMatchObject({ id: process.id, stage: 'review', version: 2 });
  });

  it('replays a repeated requestId without writing a second event', async () => {
    const { actor, process } = await setup();
    const first = await store.transition(actor, { processId: process.id, to: 'review', requestId: 'req-1' });
    const again = await store.transition(actor, { processId: process.id, to: 'review', requestId: 'req-1' });
    expect(again).toEqual({ ...first, replayed: true });
    const evs = (await store.eventsAfter(actor.tenant, `process:${process.id}`, 0, 100)).events;
    expect(evs.map((e) => e.type)).toEqual(['process.created', 'process.transitioned']);
    // A failed attempt does not burn the request id.
    const err = await rejection(store.transition(actor, { processId: process.id, to: 'draft', expectedVersion: 9, requestId: 'req-2' }));
    expect(err.code).toBe('version_conflict');
    const ok = await store.transition(actor, { processId: process.id, to: 'draft', requestId: 'req-2' });
    expect(ok.replayed).toBe(false);
  });

  it('answers conflict to a requestId used again for another request: another process, stage or user, other events', async () => {
    const { actor, wf, process } = await setup();
    const other = (await store.createProcess(actor, { workflowId: wf.id, title: 'Other' })).process;
    await store.transition(actor, { processId: process.id, to: 'review', requestId: 'same-id' });
    for (const [who, req] of [
      [actor, { processId: other.id, to: 'review', requestId: 'same-id' }],
      [actor, { processId: process.id, to: 'draft', requestId: 'same-id' }],
      [
        { tenant: actor.tenant, userId: 'bob' },
        { processId: process.id, to: 'review', requestId: 'same-id' },
      ],
    ] as const) {
      expect((await rejection(store.transition(who, req))).code).toBe('conflict');
    }
    // Within one batch too: the second names another process.
    const [x, y] = await Promise.allSettled([
      store.transition(actor, { processId: process.id, to: 'done', requestId: 'batch-id' }),
      store.transition(actor, { processId: other.id, to: 'review', requestId: 'batch-id' }),
    ]);
    expect(x.status).toBe('fulfilled');
    expect(y.status === 'rejected' && (y.reason as AppError).code).toBe('conflict');
    expect(await store.getProcess(actor.tenant, other.id)).toMatchObject({ stage: 'draft', version: 1 });

    const input = { room: 'tenant', type: 'note', actor: 'api', data: {} };
    await store.appendEventsOnce(actor.tenant, [input], 'pub-same');
    expect((await rejection(store.appendEventsOnce(actor.tenant, [{ ...input, type: 'other' }], 'pub-same'))).code).toBe('conflict');
    expect((await rejection(store.appendEventsOnce(actor.tenant, [input, input], 'pub-same'))).code).toBe('conflict');
    expect((await store.appendEventsOnce(actor.tenant, [input], 'pub-same')).replayed).toBe(true);
  });

  it('answers request_in_progress (409, retryable), not conflict, while another write holds the requestId', async () => {
    const { actor, process } = await setup();
    // A claim whose write has not stored its result (what a concurrent duplicate finds).
    await store.query(sql`INSERT INTO idempotency_keys (tenant_id, request_id, result) VALUES (${actor.tenant}, 'busy-1', NULL)`);
    const err = await rejection(store.transition(actor, { processId: process.id, to: 'review', requestId: 'busy-1' }));
    expect(err.code).toBe('request_in_progress');
    expect(err.status).toBe(409);
    expect(ERRORS.request_in_progress.retryable).toBe(true);
    // Nothing was written for it.
    expect(await store.getProcess(actor.tenant, process.id)).toMatchObject({ stage: 'draft', version: 1 });
  });

  it.runIf(name === 'postgres')(
    'answers request_in_progress to a duplicate that waited on a concurrent claim of its requestId',
    async () => {
      const { actor, process } = await setup();
      const other = postgres(pg!.url, { max: 1, onnotice: () => {} });
      // Its own connection: `other`'s only one is inside the transaction, where pg_stat_activity would not change.
      const probe = postgres(pg!.url, { max: 1, onnotice: () => {} });
      try {
        const reserved = await other.reserve();
        await reserved`BEGIN`;
        await reserved`INSERT INTO idempotency_keys (tenant_id, request_id, result) VALUES (${actor.tenant}, 'busy-2', NULL)`;
        // The duplicate's claim waits for the other transaction (on its uncommitted key)…
        const dup = rejection(store.transition(actor, { processId: process.id, to: 'review', requestId: 'busy-2' }));
        // Waited for, not slept on: the duplicate's backend is blocked on the uncommitted key.
        for (const until = Date.now() + 10_000; ; ) {
          const [row] =
            await probe`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%idempotency_keys%'`;
          if (row?.n > 0) break;
          if (Date.now() > until) throw new Error('the duplicate never waited on the claimed key');
          await new Promise((r) => setTimeout(r, 20)); // polling step
        }
        // …which commits without a result (it is still working, e.g. on another node).
        await reserved`COMMIT`;
        reserved.release();
        expect((await dup).code).toBe('request_in_progress');
      } finally {
        await probe.end();
        await other.end();
      }
    },
  );

  it('refuses moves the workflow does not allow', async () => {
    const { actor, process } = await setup();
    const err = await rejection(store.transition(actor, { processId: process.id, to: 'done' }));
    expect(err.code).toBe('invalid_transition');
    expect((await store.getProcess(actor.tenant, process.id))?.version).toBe(1);
  });

  it('answers not_found for unknown processes and workflows', async () => {
    const { actor } = await setup();
    expect((await rejection(store.transition(actor, { processId: 'nope', to: 'review' }))).code).toBe('not_found');
    expect((await rejection(store.createProcess(actor, { workflowId: 'nope', title: 'x' }))).code).toBe('not_found');
    expect(await store.getProcess(actor.tenant, 'nope')).toBeNull();
    expect(await store.getWorkflow(actor.tenant, 'nope')).toBeNull();
  });

  it('isolates tenants', async () => {
    const a = await setup();
    const b = await setup();
    expect(await b.actor.tenant).not.toBe(a.actor.tenant);
    expect(await store.getProcess(b.actor.tenant, a.process.id)).toBeNull();
    expect(await store.getWorkflow(b.actor.tenant, a.wf.id)).toBeNull();
    expect((await rejection(store.transition(b.actor, { processId: a.process.id, to: 'review' }))).code).toBe('not_found');
    expect((await rejection(store.createProcess(b.actor, { workflowId: a.wf.id, title: 'x' }))).code).toBe('not_found');
    expect((await store.listProcesses(b.actor.tenant, { limit: 50 })).items.map((p) => p.id)).toEqual([b.process.id]);
    for (const room of ['tenant', `process:${a.process.id}`, `workflow:${a.wf.id}`]) {
      expect((await store.eventsAfter(b.actor.tenant, room, 0, 100)).events.filter((e) => e.processId === a.process.id)).toEqual([]);
    }
    // Event ids are per tenant.
    expect(b.event.id).toBe(1);
  });

  it('serves eventsAfter per room kind, in id order', async () => {
    const { actor, wf, process } = await setup();
    const other = (await store.createProcess(actor, { workflowId: wf.id, title: 'Other', assignee: 'bob' })).process;
    await store.transition(actor, { processId: process.id, to: 'review' });
    const toUser = await store.appendEvent({ tenant: actor.tenant, room: 'user:bob', type: 'ping', actor: 'alice', data: { n: 1 } });
    const toProc = await store.appendEvent({ tenant: actor.tenant, room: `process:${process.id}`, type: 'note', actor: 'alice', data: {} });
    const toWf = await store.appendEvent({ tenant: actor.tenant, room: `workflow:${wf.id}`, type: 'note', actor: 'alice', data: {} });
    expect(toUser).toMatchObject({ rooms: ['user:bob'], processId: null, workflowId: null, data: { n: 1 } });
    expect(toProc).toMatchObject({ rooms: [`process:${process.id}`], processId: process.id, workflowId: null });
    expect(toWf).toMatchObject({ rooms: [`workflow:${wf.id}`], processId: null, workflowId: wf.id });

    const ids = async (room: string, after = 0) =>
      (await store.eventsAfter(actor.tenant, room, after, 100)).events.map((e: FluxoEvent) => e.id);
    expect(await ids('tenant')).toEqual([1, 2, 3]);
    expect(await ids(`process:${process.id}`)).toEqual([1, 3, toProc.id]);
    expect(await ids(`process:${other.id}`)).toEqual([2]);
    expect(await ids(`workflow:${wf.id}`)).toEqual([1, 2, 3, toWf.id]);
    expect(await ids('user:bob')).toEqual([toUser.id]);
    expect(await ids('tenant', 2)).toEqual([3]);
    expect(await store.eventsAfter(actor.tenant, `workflow:${wf.id}`, 0, 2).then((e) => e.events.map((x) => x.id))).toEqual([1, 2]);
    expect((await rejection(store.eventsAfter(actor.tenant, 'bogus', 0, 10))).code).toBe('invalid_room');
  });

  it('says whether more follow a page: full, cut where its data passes PAGE_DATA_BYTES (never empty), or the end', async () => {
    const { actor } = await setup();
    const room = 'user:big';
    // 300 kB of data each: three fit in 1 MiB, a fourth would not.
    const blob = 'b'.repeat(300_000);
    const big = await store.appendEvents(
      actor.tenant,
      Array.from({ length: 6 }, (_, i) => ({ room, type: 'big', actor: 'api', data: { i, blob } })),
    );
    const ids = big.map((e) => e.id);
    const pageAfter = async (from: number, limit = 100) => {
      const page = await store.eventsAfter(actor.tenant, room, from, limit);
      return { ids: page.events.map((e) => e.id), more: page.more };
    };
    expect(await pageAfter(0)).toEqual({ ids: ids.slice(0, 3), more: true });
    expect(await pageAfter(ids[2]!)).toEqual({ ids: ids.slice(3), more: false });
    expect(await pageAfter(0, 2)).toEqual({ ids: ids.slice(0, 2), more: true });
    expect(await pageAfter(ids[5]!)).toEqual({ ids: [], more: false });
    // Backwards the newest are kept, still in id order.
    const pageBefore = async (to: number) => {
      const page = await store.eventsBefore(actor.tenant, room, 0, to, 100);
      return { ids: page.events.map((e) => e.id), more: page.more };
    };
    expect(await pageBefore(ids[5]! + 1)).toEqual({ ids: ids.slice(3), more: true });
    expect(await pageBefore(ids[3]!)).toEqual({ ids: ids.slice(0, 3), more: false });
    // One event larger than the bound is a page of its own, and ends the page before it.
    const huge = await store.appendEvent({ tenant: actor.tenant, room, type: 'huge', actor: 'api', data: { blob: 'h'.repeat(1_200_000) } });
    expect(await pageAfter(ids[5]!)).toEqual({ ids: [huge.id], more: false });
    expect(await pageAfter(ids[4]!)).toEqual({ ids: [ids[5]], more: true });
  });

  it('cuts a page of processes where their data passes PAGE_DATA_BYTES, with a cursor to the rest', async () => {
    const { actor, wf } = await setup();
    const blob = 'p'.repeat(300_000);
    const created: string[] = [];
    for (let i = 0; i < 7; i++)
      created.push((await store.createProcess(actor, { workflowId: wf.id, title: `big ${i}`, data: { blob } })).process.id);
    const newestFirst = created.reverse();
    const seen: string[][] = [];
    let cursor: string | undefined;
    for (let n = 0; n < 10; n++) {
      const page = await store.listProcesses(actor.tenant, { workflowId: wf.id, limit: 500, ...(cursor ? { cursor } : {}) });
      seen.push(page.items.map((p) => p.id));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    // Three of 300 kB fit in 1 MiB: 3, 3, then the last one (and the setup's own small process).
    expect(seen.map((ids) => ids.length)).toEqual([3, 3, 2]);
    expect(seen.flat().slice(0, 7)).toEqual(newestFirst);
  });

  it("numbers each room's events 1, 2, 3… in id order, across writes of every kind, and reports the head", async () => {
    const { actor, wf, process, event } = await setup();
    expect(event.offsets).toEqual([1, 1, 1]); // process:, workflow:, tenant
    const other = (await store.createProcess(actor, { workflowId: wf.id, title: 'Other' })).process;
    const { event: moved } = await store.transition(actor, { processId: process.id, to: 'review' });
    const batch = await store.appendEvents(actor.tenant, [
      { room: `process:${other.id}`, type: 'note', actor: 'a', data: {} },
      { room: 'tenant', type: 'note', actor: 'a', data: {} },
      { room: `process:${other.id}`, type: 'note', actor: 'a', data: {} },
    ]);
    expect(moved.rooms).toEqual([`process:${process.id}`, `workflow:${wf.id}`, 'tenant']);
    expect(moved.offsets).toEqual([2, 3, 3]);
    expect(batch.map((e) => e.offsets)).toEqual([[2], [4], [3]]);
    for (const room of [`process:${process.id}`, `process:${other.id}`, `workflow:${wf.id}`, 'tenant']) {
      const events = (await store.eventsAfter(actor.tenant, room, 0, 100)).events;
      const offsets = events.map((e) => e.offsets[e.rooms.indexOf(room)]);
      expect(offsets, room).toEqual(events.map((_, i) => i + 1));
      const head = await store.roomPosition(actor.tenant, room);
      expect(head).toMatchObject({ offset: events.length, id: events[events.length - 1]!.id });
      expect(head.epoch).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(await store.roomPosition(actor.tenant, 'user:nobody')).toMatchObject({ offset: 0, id: 0 });
  });

  it('lists processes with filters and keyset pagination', async () => {
    const { actor, wf, process } = await setup();
    const made = [process.id];
    for (let i = 0; i < 4; i++) {
      made.push((await store.createProcess(actor, { workflowId: wf.id, title: `P${i}`, assignee: i % 2 ? 'bob' : null })).process.id);
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.listProcesses(actor.tenant, { workflowId: wf.id, limit: 2, cursor });
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((p) => p.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toHaveLength(5);
    expect(new Set(seen)).toEqual(new Set(made));
    expect((await store.listProcesses(actor.tenant, { assignee: 'bob', limit: 50 })).items).toHaveLength(2);
    await store.transition(actor, { processId: process.id, to: 'review' });
    expect((await store.listProcesses(actor.tenant, { stage: 'review', limit: 50 })).items.map((p) => p.id)).toEqual([process.id]);
    expect((await rejection(store.listProcesses(actor.tenant, { limit: 5, cursor: 'garbage' }))).code).toBe('bad_request');
  });

  it('routes rows to their monthly partition, and moves stray rows out of DEFAULT', async () => {
    const tenant = `t-${randomUUID().slice(0, 8)}`;
    const now = new Date();
    const created = await store.ensurePartitions(new Date(Date.UTC(2031, 0, 10)), 2);
    expect(created).toEqual(['events_2031_01', 'events_2031_02', 'events_2031_03']);
    expect(await store.ensurePartitions(new Date(Date.UTC(2031, 0, 10)), 2)).toEqual([]);
    const insert = (id: number, at: string) =>
      store.query(
        sql`INSERT INTO events (tenant_id, id, occurred_at, type, rooms, offsets, actor, data) VALUES (${tenant}, ${id}, ${at}::timestamptz, 'x', ARRAY['tenant'], ARRAY[${id}::bigint], 'u', '{}'::jsonb)`,
      );
    await insert(1, '2031-01-31T23:59:59.999Z');
    await insert(2, '2031-02-01T00:00:00Z');
    await insert(3, '2031-07-04T12:00:00Z'); // no partition yet → DEFAULT
    const where = async () =>
      Object.fromEntries(
        (await store.query(sql`SELECT id, tableoid::regclass::text AS part FROM events WHERE tenant_id = ${tenant}`)).map((r) => [
          Number(r.id),
          r.part,
        ]),
      );
    expect(await where()).toEqual({ 1: 'events_2031_01', 2: 'events_2031_02', 3: 'events_default' });
    expect(await store.ensurePartitions(new Date(Date.UTC(2031, 6, 1)), 0)).toEqual(['events_2031_07']);
    expect(await where()).toEqual({ 1: 'events_2031_01', 2: 'events_2031_02', 3: 'events_2031_07' });
    // The moved partition is a full member: new rows route there, keys still enforced.
    await insert(4, '2031-07-05T00:00:00Z');
    expect((await where())[4]).toBe('events_2031_07');
    await expect(insert(4, '2031-07-05T00:00:00Z')).rejects.toMatchObject({
      cause: { code: '23505', message: 'duplicate key value violates unique constraint "events_2031_07_pkey"' },
    });
    // Current month and the next three exist (created in beforeAll).
    const cur = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const expected = [0, 1, 2, 3].map((i) => {
      const d = new Date(Date.UTC(cur.getUTCFullYear(), cur.getUTCMonth() + i, 1));
      return `events_${d.getUTCFullYear()}_${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
    });
    const parts = (
      await store.query(
        sql`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass`,
      )
    ).map((r) => r.name);
    expect(parts).toEqual(expect.arrayContaining([...expected, 'events_default']));
  });

  it('drops partitions past retention, never DEFAULT', async () => {
    expect(await store.ensurePartitions(new Date(Date.UTC(2020, 0, 15)), 2)).toEqual([
      'events_2020_01',
      'events_2020_02',
      'events_2020_03',
    ]);
    expect(await store.dropExpiredPartitions(new Date(Date.UTC(2020, 5, 10)), 0)).toEqual([]);
    // Cutoff 2020-03-10: January and February end before it, March does not.
    expect(await store.dropExpiredPartitions(new Date(Date.UTC(2020, 5, 10)), 3)).toEqual(['events_2020_01', 'events_2020_02']);
    const left = await store.query(
      sql`SELECT to_regclass('events_2020_03') IS NOT NULL AS m, to_regclass('events_default') IS NOT NULL AS d`,
    );
    expect(left[0]).toEqual({ m: true, d: true });
  });

  it('revokes tokens until they expire', async () => {
    // What nodes load into their in-memory set (server/auth/revocations.ts).
    const revoked = async (k: string) => (await store.revokedSince(null)).find((r) => r.key === k);
    const key = `jti-${randomUUID()}`;
    expect(await revoked(key)).toBeUndefined();
    const later = new Date(Date.now() + 60_000);
    await store.revokeToken(key, later);
    await store.revokeToken(key, new Date(Date.now() + 30_000)); // idempotent; keeps the later expiry
    expect((await revoked(key))?.expiresAt).toEqual(later);
    const old = `jti-${randomUUID()}`;
    await store.revokeToken(old, new Date(Date.now() - 1_000));
    expect(await revoked(old)).toBeUndefined();
    await store.ping();
  });

  it('commits concurrent writes in one batch, each decided against the ones before it', async () => {
    const { actor, process, wf } = await setup();
    const other = (await store.createProcess(actor, { workflowId: wf.id, title: 'Other' })).process;
    const before = { ...store.commitStats };
    // Issued in the same tick: they queue behind each other and commit together.
    const settled = await Promise.allSettled([
      store.transition(actor, { processId: process.id, to: 'review', expectedVersion: 1, requestId: 'b-1' }),
      store.transition(actor, { processId: process.id, to: 'done', expectedVersion: 2 }),
      store.transition(actor, { processId: process.id, to: 'draft', expectedVersion: 2 }), // stale: the previous one moved it
      store.transition(actor, { processId: other.id, to: 'done' }), // not allowed from draft
      store.transition(actor, { processId: 'missing', to: 'review' }),
      store.transition(actor, { processId: process.id, to: 'review', expectedVersion: 1, requestId: 'b-1' }), // duplicate in-batch
      store.appendEvent({ tenant: actor.tenant, room: 'tenant', type: 'note', actor: 'api', data: { n: 1 } }),
    ]);
    const batches = store.commitStats.batches - before.batches;
    expect(store.commitStats.items - before.items).toBe(7);
    expect(batches).toBe(1);
    const [a, b, c, d, e, f, g] = settled;
    expect(a).toMatchObject({ status: 'fulfilled', value: { replayed: false, process: { stage: 'review', version: 2 } } });
    expect(b).toMatchObject({ status: 'fulfilled', value: { replayed: false, process: { stage: 'done', version: 3 } } });
    expect(c.status === 'rejected' && (c.reason as AppError).code).toBe('version_conflict');
    expect(c.status === 'rejected' && (c.reason as AppError).toBody().current).toMatchObject({ stage: 'done', version: 3 });
    expect(d.status === 'rejected' && (d.reason as AppError).code).toBe('invalid_transition');
    expect(e.status === 'rejected' && (e.reason as AppError).code).toBe('not_found');
    expect(f.status === 'fulfilled' && a.status === 'fulfilled' && f.value).toEqual(
      a.status === 'fulfilled' && { ...a.value, replayed: true },
    );
    expect(g.status).toBe('fulfilled');
    // Stored state is the last accepted move; ids are consecutive, in arrival order.
    expect(await store.getProcess(actor.tenant, process.id)).toMatchObject({ stage: 'done', version: 3 });
    expect(await store.getProcess(actor.tenant, other.id)).toMatchObject({ stage: 'draft', version: 1 });
    const evs = (await store.eventsAfter(actor.tenant, 'tenant', 2, 100)).events;
    expect(evs.map((x) => [x.id, x.type, x.toStage])).toEqual([
      [3, 'process.transitioned', 'review'],
      [4, 'process.transitioned', 'done'],
      [5, 'note', null],
    ]);
    // The duplicate's key holds the committed result; a later retry replays it.
    const again = await store.transition(actor, { processId: process.id, to: 'review', requestId: 'b-1' });
    expect(again.replayed).toBe(true);
    expect(again.event.id).toBe(3);
  });

  it('releases the request id of a write that failed inside a batch', async () => {
    const { actor, process } = await setup();
    const [bad, good] = await Promise.allSettled([
      store.transition(actor, { processId: process.id, to: 'review', expectedVersion: 7, requestId: 'r-bad' }),
      store.transition(actor, { processId: process.id, to: 'review', requestId: 'r-good' }),
    ]);
    expect(bad.status === 'rejected' && (bad.reason as AppError).code).toBe('version_conflict');
    expect(good.status).toBe('fulfilled');
    const retry = await store.transition(actor, { processId: process.id, to: 'done', requestId: 'r-bad' });
    expect(retry).toMatchObject({ replayed: false, process: { stage: 'done', version: 3 } });
  });

  it('keeps the other writes of a batch when one of them makes the database refuse the batch', async () => {
    const { actor, process, wf } = await setup();
    const other = (await store.createProcess(actor, { workflowId: wf.id, title: 'Other' })).process;
    // jsonb cannot hold U+0000: Postgres refuses the whole statement, so the batch is retried one by one.
    // The refused statement is the batch's last (the insert, on Postgres sent with the COMMIT behind
    // it): its claims, ids and offsets must roll back with it.
    const [ok1, poison, ok2] = await Promise.allSettled([
      store.transition(actor, { processId: other.id, to: 'review', requestId: 'keep-1' }),
      store.transition(actor, { processId: process.id, to: 'review', data: { bad: 'a\u0000b' }, requestId: 'poison-1' }),
      store.appendEventsOnce(actor.tenant, [{ room: 'tenant', type: 'note', actor: 'api', data: {} }], 'keep-2'),
    ]);
    expect(poison.status).toBe('rejected');
    expect(ok1).toMatchObject({ status: 'fulfilled', value: { process: { stage: 'review', version: 2 }, replayed: false } });
    expect(ok2).toMatchObject({ status: 'fulfilled', value: { replayed: false } });
    expect(await store.getProcess(actor.tenant, process.id)).toMatchObject({ stage: 'draft', version: 1 });
    const evs = (await store.eventsAfter(actor.tenant, 'tenant', 0, 100)).events;
    expect(evs.map((e) => e.id)).toEqual([1, 2, 3, 4]);
    expect(evs.map((e) => e.offsets[e.rooms.indexOf('tenant')])).toEqual([1, 2, 3, 4]);
    // The poisoned write's request id was released with the rollback: a clean retry is a new request.
    const retry = await store.transition(actor, { processId: process.id, to: 'review', requestId: 'poison-1' });
    expect(retry).toMatchObject({ replayed: false, event: { id: 5 } });
  });

  it('forgets request ids older than the cut-off, so a retry after that is a new request', async () => {
    const { actor, process } = await setup();
    await store.transition(actor, { processId: process.id, to: 'review', requestId: 'old-1' });
    expect(await store.pruneIdempotencyKeys(new Date(Date.now() - 60_000))).toBe(0);
    expect((await store.transition(actor, { processId: process.id, to: 'review', requestId: 'old-1' })).replayed).toBe(true);
    expect(await store.pruneIdempotencyKeys(new Date(Date.now() + 60_000))).toBeGreaterThanOrEqual(1);
    const again = await store.transition(actor, { processId: process.id, to: 'done', requestId: 'old-1' });
    expect(again).toMatchObject({ replayed: false, process: { stage: 'done', version: 3 } });
  });

  it('appends several events of one request with consecutive ids', async () => {
    const { actor } = await setup();
    const evs = await store.appendEvents(actor.tenant, [
      { room: 'tenant', type: 'a', actor: 'api', data: {} },
      { room: 'user:bob', type: 'b', actor: 'api', data: { x: 1 } },
      { room: 'tenant', type: 'c', actor: 'api', data: {} },
    ]);
    expect(evs.map((e) => [e.id, e.type, e.rooms])).toEqual([
      [2, 'a', ['tenant']],
      [3, 'b', ['user:bob']],
      [4, 'c', ['tenant']],
    ]);
    await expect(store.appendEvents(actor.tenant, [{ room: 'nope:x', type: 'a', actor: 'api', data: {} }])).rejects.toMatchObject({
      code: 'invalid_room',
    });
  });

  it("replays appends named by a requestId: same events, nothing written again, apart from transitions' ids", async () => {
    const { actor, process } = await setup();
    const inputs = [
      { room: 'tenant', type: 'a', actor: 'api', data: { n: 1 } },
      { room: 'user:bob', type: 'b', actor: 'api', data: {} },
    ];
    const first = await store.appendEventsOnce(actor.tenant, inputs, 'pub-1');
    expect(first.replayed).toBe(false);
    const again = await store.appendEventsOnce(actor.tenant, inputs, 'pub-1');
    expect(again).toEqual({ events: JSON.parse(JSON.stringify(first.events)), replayed: true });
    // Another tenant's id space is its own.
    const { actor: other } = await setup();
    expect((await store.appendEventsOnce(other.tenant, inputs, 'pub-1')).replayed).toBe(false);
    // Two duplicates in one batch: the first writes, the second follows it.
    const [x, y] = await Promise.all([
      store.appendEventsOnce(actor.tenant, [inputs[0]!], 'pub-2'),
      store.appendEventsOnce(actor.tenant, [inputs[0]!], 'pub-2'),
    ]);
    expect([x!.replayed, y!.replayed]).toEqual([false, true]);
    expect(y!.events.map((e) => e.id)).toEqual(x!.events.map((e) => e.id));
    // A transition may use the same id: its key space is apart from the publishes'.
    const moved = await store.transition(actor, { processId: process.id, to: 'review', requestId: 'pub-1' });
    expect(moved.replayed).toBe(false);
    // Spelt like a publish's stored key, it finds a result of another kind: conflict, nothing written.
    const err = await rejection(store.transition(actor, { processId: process.id, to: 'done', requestId: 'publish:pub-1' }));
    expect(err.code).toBe('conflict');
    const log = (await store.eventsAfter(actor.tenant, 'tenant', 0, 100)).events;
    expect(log.map((e) => e.type)).toEqual(['process.created', 'a', 'a', 'process.transitioned']);
    expect(await store.getProcess(actor.tenant, process.id)).toMatchObject({ stage: 'review', version: 2 });
  });

  it.runIf(name === 'postgres')(
    'applies a requestId sent to two nodes at once exactly once: the later one waits for the first and replays it',
    async () => {
      const { actor, wf } = await setup();
      const other = await createStore({ databaseUrl: pg!.url, poolSize: 4 });
      try {
        const procs = await Promise.all(
          Array.from({ length: 12 }, (_, n) => store.createProcess(actor, { workflowId: wf.id, title: `Dup ${n}` })),
        );
        const answers = await Promise.all(
          procs.flatMap(({ process }, n) => {
            const req = { processId: process.id, to: 'review', requestId: `twice-${n}` };
            return [store.transition(actor, req), other.transition(actor, req)];
          }),
        );
        for (let n = 0; n < procs.length; n++) {
          const [a, b] = [answers[2 * n]!, answers[2 * n + 1]!];
          // One applied it, the other got that result back.
          expect([a.replayed, b.replayed].sort()).toEqual([false, true]);
          expect(b.event.id).toBe(a.event.id);
          expect(await store.getProcess(actor.tenant, procs[n]!.process.id)).toMatchObject({ stage: 'review', version: 2 });
        }
        const moved = (await store.eventsAfter(actor.tenant, 'tenant', 0, 1000)).events.filter((e) => e.type === 'process.transitioned');
        expect(moved).toHaveLength(procs.length);
      } finally {
        await other.close();
      }
    },
  );

  it('answers request_in_progress to a publish whose requestId another write holds, and writes nothing', async () => {
    const { actor } = await setup();
    await store.query(sql`INSERT INTO idempotency_keys (tenant_id, request_id, result) VALUES (${actor.tenant}, 'publish:busy', NULL)`);
    const err = await rejection(store.appendEventsOnce(actor.tenant, [{ room: 'tenant', type: 'a', actor: 'api', data: {} }], 'busy'));
    expect(err.code).toBe('request_in_progress');
    expect((await store.eventsAfter(actor.tenant, 'tenant', 0, 100)).events.map((e) => e.type)).toEqual(['process.created']);
  });

  it.runIf(name === 'postgres')(
    'assigns event ids so that paging "after last seen id" never misses one under concurrent commits',
    async () => {
      const { actor, wf } = await setup();
      const writers = 8;
      const perWriter = 25;
      const procs = await Promise.all(
        Array.from({ length: writers }, (_, i) => store.createProcess(actor, { workflowId: wf.id, title: `w${i}` }).then((r) => r.process)),
      );
      const seen: number[] = [];
      let cursor = 0;
      let done = false;
      const poll = async () => {
        const page = (await store.eventsAfter(actor.tenant, 'tenant', cursor, 50)).events;
        for (const e of page) seen.push(e.id);
        if (page.length > 0) cursor = page[page.length - 1]!.id;
        return page.length;
      };
      const reader = (async () => {
        while (!done) await poll();
        while ((await poll()) > 0) {}
      })();
      await Promise.all(
        procs.map(async (p) => {
          for (let i = 0; i < perWriter; i++) {
            await store.transition(actor, { processId: p.id, to: i % 2 === 0 ? 'review' : 'draft', expectedVersion: i + 1 });
          }
        }),
      );
      done = true;
      await reader;
      const total = 1 + writers + writers * perWriter;
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      // Every room's offsets run 1, 2, 3… in id order, though batches of several nodes interleaved.
      for (const room of ['tenant', `workflow:${wf.id}`, ...procs.map((p) => `process:${p.id}`)]) {
        const events = (await store.eventsAfter(actor.tenant, room, 0, 1000)).events;
        expect(
          events.map((e) => e.offsets[e.rooms.indexOf(room)]),
          room,
        ).toEqual(events.map((_, i) => i + 1));
      }
    },
  );
});
