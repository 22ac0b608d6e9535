import { api } from '../scripts/topology/api.js';
import { createBoard, createProcess } from '../scripts/topology/fixtures.js';
import { token } from '../scripts/topology/tokens.js';
import type { FluxoEvent, TransitionResult } from '../shared/protocol.js';
import { LeanClient } from './lean-client.js';
import { nextStage, runTenant } from './setup.js';

/** How events are produced: the publish API, HTTP transitions, or `process:transition` on a socket. */
export type PublishMode = 'publish' | 'http' | 'socket';
export const PUBLISH_MODES: readonly PublishMode[] = ['publish', 'http', 'socket'];

/** One room of the run: subscribers join `room` in `tenant`. */
export interface RunRoom {
  key: string;
  tenant: string;
  room: string;
  workflowId?: string;
}

/** Produces one event in its room and resolves with the committed event id. */
export interface Publisher {
  roomKey: string;
  publish(): Promise<number>;
  close(): void;
}

export interface PublisherSetup {
  url: string;
  secret: string;
  run: string;
  mode: PublishMode;
  rooms: number;
  publishers: number;
  publishKey?: string;
  payloadBytes: number;
}

/** Creates the run's rooms: one tenant each (room `tenant`, or `workflow:<id>` for transitions). */
export async function createRooms(s: PublisherSetup): Promise<RunRoom[]> {
  return Promise.all(
    Array.from({ length: s.rooms }, async (_, r): Promise<RunRoom> => {
      const tenant = runTenant(s.run, r);
      if (s.mode === 'publish') return { key: `r${r}`, tenant, room: 'tenant' };
      const wf = await createBoard(s.url, await token({ sub: 'lt-admin', tid: tenant, role: 'admin', secret: s.secret }));
      return { key: `r${r}`, tenant, room: `workflow:${wf.id}`, workflowId: wf.id };
    }),
  );
}

/** One event's body for `POST /api/publish`. */
export interface PublishBody {
  tenant: string;
  room: string;
  type: string;
  data: unknown;
}

/**
 * Events through the publish API, several as one `{ events: [...] }` call — one commit for all of
 * them, as a backend would send them. Resolves with their ids, in order.
 */
export async function publishEvents(url: string, key: string, events: PublishBody[]): Promise<number[]> {
  const body = events.length === 1 ? events[0] : { events };
  const res = await api<{ data: FluxoEvent | FluxoEvent[] }>(url, 'POST', '/api/publish', { token: key, body });
  if (res.status !== 201) throw new Error(`publish: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
  return [res.body.data].flat().map((e) => e.id);
}

function check<T>(res: { status: number; body: { data: T } }, what: string): T {
  if (res.status >= 300) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
  return res.body.data;
}

/** Publisher p works in room p % rooms; transition publishers each own a process, so blind writes never conflict. */
export async function createPublishers(s: PublisherSetup, rooms: RunRoom[]): Promise<Publisher[]> {
  const pad = 'x'.repeat(Math.max(0, s.payloadBytes));
  return Promise.all(
    Array.from({ length: s.publishers }, async (_, p): Promise<Publisher> => {
      const room = rooms[p % rooms.length]!;
      if (s.mode === 'publish') {
        if (!s.publishKey) throw new Error('publish mode needs --publish-key (or PUBLISH_API_KEY)');
        const body = { tenant: room.tenant, room: room.room, type: 'loadtest', data: { pad } };
        const key = s.publishKey;
        return { roomKey: room.key, publish: async () => (await publishEvents(s.url, key, [body]))[0]!, close: () => {} };
      }
      const editor = await token({ sub: `lt-pub-${p}`, tid: room.tenant, role: 'editor', secret: s.secret });
      const proc = await createProcess(s.url, editor, room.workflowId!, `loadtest ${p}`);
      let stage = proc.stage;
      if (s.mode === 'http') {
        return {
          roomKey: room.key,
          publish: async () => {
            const to = nextStage(stage);
            const res = await api<{ data: TransitionResult }>(s.url, 'POST', `/api/processes/${proc.id}/transition`, {
              token: editor,
              body: { to, data: { pad } },
            });
            const result = check(res, 'transition');
            stage = result.process.stage;
            return result.event.id;
          },
          close: () => {},
        };
      }
      const client = await LeanClient.connect({ url: s.url, token: editor });
      return {
        roomKey: room.key,
        publish: async () => {
          const ack = await client.request<{ data?: TransitionResult; error?: { code: string; message: string } }>('process:transition', {
            processId: proc.id,
            to: nextStage(stage),
            data: { pad },
          });
          if (!ack.data) throw new Error(`process:transition: ${ack.error?.code ?? 'no data'}`);
          stage = ack.data.process.stage;
          return ack.data.event.id;
        },
        close: () => client.close(),
      };
    }),
  );
}
