import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { type PostgresHandle, startPostgres } from '../../scripts/topology/postgres.js';
import { type RedisInstance, startRedis } from '../../scripts/topology/redis.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { createStore, type SqlStore } from '../../server/store/index.js';
import type { FluxoEvent } from '../../shared/protocol.js';
import { type Client, client, collect, eventually, request, startNode } from '../harness/node.js';

// Events committed by a node that died before publishing them (realtime/room-tails.ts): a second
// store on the same Postgres plays that node — it commits and never publishes. The node under test
// must find them in the log and send them to its subscribers, though no later event of the room
// comes to show the gap.

const TENANT = 'tails';
const CHECK_MS = 300;

describe('the room tail check (several nodes)', () => {
  let pg: PostgresHandle;
  let redis: RedisInstance;
  let node: FluxoNode;
  let dead: SqlStore;
  let admin: string;
  const sockets: Client[] = [];

  beforeAll(async () => {
    [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
    node = await startNode({
      DATABASE_URL: pg.url,
      REDIS_URL: redis.url,
      ROOM_TAIL_CHECK_MS: String(CHECK_MS),
      RATE_LIMITS: 'http:write=100000/1,http:read=100000/1,process:transition=100000/1,subscribe=1000/1',
    });
    dead = await createStore({ databaseUrl: pg.url, poolSize: 1 });
    admin = await token({ sub: 'tails-admin', tid: TENANT, role: 'admin' });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await node?.close();
    await dead?.close();
    await Promise.all([pg?.stop(), redis?.stop()]);
  });

  async function watch(room: string): Promise<{ events: FluxoEvent[]; startOffset: number }> {
    const socket = await client(node.url, { token: admin });
    sockets.push(socket);
    const seen = collect(socket);
    const ack = await request(socket, 'subscribe', { room });
    if (!('data' in ack)) throw new Error(JSON.stringify(ack));
    return { events: seen.events, startOffset: ack.data.position.offset };
  }

  it("sends a room's last events, committed and never published, from the log", async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    const inProcess = await watch(`process:${proc.id}`);
    const inTenant = await watch('tenant');

    // The "dead" node commits two transitions and publishes nothing.
    const actor = { tenant: TENANT, userId: 'ghost' };
    await dead.transition(actor, { processId: proc.id, to: 'doing' });
    await dead.transition(actor, { processId: proc.id, to: 'done' });

    // A socket subscribing now reads a head past those events: it must not hide them from the others.
    const late = await watch(`process:${proc.id}`);

    for (const seen of [inProcess, inTenant]) {
      await eventually(() =>
        expect(seen.events.map((e) => [e.type, e.toStage, e.version])).toEqual([
          ['process.transitioned', 'doing', 2],
          ['process.transitioned', 'done', 3],
        ]),
      );
    }
    // The late one started at the head: whatever of the tail reached it too is at or below its
    // start, a repeat the protocol drops (rule 2).
    expect(late.startOffset).toBe(3);
    for (const e of late.events) expect(e.offsets[e.rooms.indexOf(`process:${proc.id}`)]).toBeLessThanOrEqual(late.startOffset);
    const metrics = await fetch(`${node.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^ws_tail_events_resent_total(\{[^}]*\})? [1-9]\d*$/m);
  });

  it('sends a tail longer than one repair page, in order', async () => {
    const wf = await createBoard(node.url, admin);
    const seen = await watch(`workflow:${wf.id}`);
    const n = 230;
    const written = await dead.appendEvents(
      TENANT,
      Array.from({ length: n }, (_, i) => ({ room: `workflow:${wf.id}`, type: 'tail.test', actor: 'ghost', data: { i } })),
    );
    await eventually(() => expect(seen.events).toHaveLength(n));
    expect(seen.events.map((e) => e.id)).toEqual(written.map((e) => e.id));
  });

  it('sends nothing again for events this node sent itself', async () => {
    const wf = await createBoard(node.url, admin);
    const proc = await createProcess(node.url, admin, wf.id);
    const seen = await watch(`process:${proc.id}`);
    const moved = await api(node.url, 'POST', `/api/processes/${proc.id}/transition`, { token: admin, body: { to: 'doing' } });
    expect(moved.status).toBe(200);
    await eventually(() => expect(seen.events).toHaveLength(1));
    // Barrier: an event the dead node commits after it. The check sends it from the log after what
    // this node sent last; had the node not counted its own transition as sent, it would come again.
    await dead.transition({ tenant: TENANT, userId: 'ghost' }, { processId: proc.id, to: 'done' });
    await eventually(() => expect(seen.events.map((e) => e.toStage)).toContain('done'));
    expect(seen.events.map((e) => e.toStage)).toEqual(['doing', 'done']);
  });
});
