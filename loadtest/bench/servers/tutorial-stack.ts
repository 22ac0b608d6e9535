import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { jwtVerify } from 'jose';
import postgres from 'postgres';
import { Server } from 'socket.io';
import { parseTransitionBody, socketRoom, tenantRoom, transitionPath, transitionRooms } from './tutorial-requests.js';
import { createSchema } from './tutorial-schema.js';

/**
 * Baseline for the write path: the server a Socket.IO + Postgres tutorial has you write. node:http,
 * postgres.js with its default pool, a jose verify of the Bearer token on every request, one
 * transaction per transition (SELECT … FOR UPDATE, version and workflow check, UPDATE, INSERT into
 * the event log, COMMIT), then `io.to(room).emit` to the tenant, workflow and process rooms through
 * @socket.io/redis-adapter on ioredis — Socket.IO on node:http and `ws`, no uWS. It answers the
 * transition route as Fluxo does (`{data: {process, event}}`, 409 with `current`), so the bench
 * drives both with the same load and checks both the same way.
 *
 * Env: PORT, NODE_ID, DATABASE_URL (its own database), REDIS_URL, JWT_SECRET; LOSE_EVERY=N skips
 * the emits of every Nth committed transition — the bench's self-check that a lost event is caught.
 */
function env(k: string): string {
  const v = process.env[k];
  if (!v) throw new Error(`tutorial-stack: ${k} is required`);
  return v;
}
const nodeId = env('NODE_ID');
const secret = new TextEncoder().encode(env('JWT_SECRET'));
const loseEvery = Number(process.env.LOSE_EVERY ?? 0);

const sql = postgres(env('DATABASE_URL'), { onnotice: () => {} });
await createSchema(sql);

interface User {
  sub: string;
  tid: string;
  role: string;
}

async function verify(token: string | undefined): Promise<User | null> {
  if (!token) return null;
  try {
    const { payload } = await jwtVerify(token, secret, { algorithms: ['HS256'] });
    const { sub, tid, role } = payload as Partial<User>;
    return typeof sub === 'string' && typeof tid === 'string' && typeof role === 'string' ? { sub, tid, role } : null;
  } catch {
    return null;
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const error = (code: string, extra: Record<string, unknown> = {}) => ({ error: { code, message: code, ...extra } });

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

interface ProcessRow {
  id: string;
  workflowId: string;
  title: string;
  stage: string;
  version: number;
  updatedAt: Date;
}

/** Fluxo's event fields (shared/protocol.ts) without its per-room offsets, which such a server has no notion of. */
interface TransitionEvent {
  id: number;
  type: 'process.transitioned';
  rooms: string[];
  processId: string;
  workflowId: string;
  fromStage: string;
  toStage: string;
  version: number;
  actor: string;
  at: string;
  data: Record<string, unknown>;
}

type Outcome = { status: 200; process: ProcessRow; event: TransitionEvent } | { status: 404 | 422 } | { status: 409; current: ProcessRow };

async function transition(user: User, processId: string, to: string, expectedVersion: number | undefined): Promise<Outcome> {
  return sql.begin(async (tx): Promise<Outcome> => {
    const [row] = await tx<(ProcessRow & { transitions: Record<string, string[]> })[]>`
      SELECT p.id, p.workflow_id AS "workflowId", p.title, p.stage, p.version, p.updated_at AS "updatedAt", w.transitions
      FROM processes p JOIN workflows w ON w.id = p.workflow_id
      WHERE p.id = ${processId} AND p.tenant_id = ${user.tid} FOR UPDATE OF p`;
    if (!row) return { status: 404 };
    const { transitions, ...current } = row;
    if (expectedVersion !== undefined && expectedVersion !== current.version) return { status: 409, current };
    if (!transitions[current.stage]?.includes(to)) return { status: 422 };
    const [process] = await tx<ProcessRow[]>`
      UPDATE processes SET stage = ${to}, version = version + 1, updated_at = now() WHERE id = ${processId}
      RETURNING id, workflow_id AS "workflowId", title, stage, version, updated_at AS "updatedAt"`;
    const [logged] = await tx<{ id: string; at: Date }[]>`
      INSERT INTO events (tenant_id, type, process_id, workflow_id, from_stage, to_stage, version, actor)
      VALUES (${user.tid}, 'process.transitioned', ${processId}, ${current.workflowId}, ${current.stage}, ${to}, ${process!.version}, ${user.sub})
      RETURNING id, at`;
    const event: TransitionEvent = {
      // bigserial arrives as a string; the ids fit a double for any run of this bench.
      id: Number(logged!.id),
      type: 'process.transitioned',
      rooms: transitionRooms(current.workflowId, processId),
      processId,
      workflowId: current.workflowId,
      fromStage: current.stage,
      toStage: to,
      version: process!.version,
      actor: user.sub,
      at: logged!.at.toISOString(),
      data: {},
    };
    return { status: 200, process: process!, event };
  });
}

let committed = 0;
async function onTransition(req: IncomingMessage, res: ServerResponse, processId: string): Promise<void> {
  const user = await verify(req.headers.authorization?.replace(/^Bearer /, ''));
  if (!user) return send(res, 401, error('unauthorized'));
  if (user.role !== 'editor' && user.role !== 'admin') return send(res, 403, error('forbidden'));
  const body = parseTransitionBody(await readBody(req));
  if (!body) return send(res, 400, error('invalid_request'));
  const out = await transition(user, processId, body.to, body.expectedVersion);
  if (out.status === 409) return send(res, 409, error('version_conflict', { current: out.current }));
  if (out.status !== 200) return send(res, out.status, error(out.status === 404 ? 'not_found' : 'invalid_transition'));
  // After COMMIT, never before: a subscriber must not see what a rollback could take back.
  if (!(loseEvery > 0 && ++committed % loseEvery === 0))
    for (const room of out.event.rooms) io.to(socketRoom(user.tid, room)).emit('event', out.event);
  send(res, 200, { data: { process: out.process, event: out.event } });
}

const http = createServer((req, res) => {
  const processId = req.method === 'POST' ? transitionPath(req.url ?? '') : null;
  if (processId)
    return void onTransition(req, res, processId).catch((err: unknown) => {
      process.stderr.write(`tutorial-stack: ${err instanceof Error ? err.message : String(err)}\n`);
      if (!res.headersSent) send(res, 500, error('internal'));
    });
  // The bench learns which node answers from `node`, as it does from Fluxo's /health.
  if (req.url === '/health') return send(res, 200, { status: 'ok', node: nodeId });
  // Socket.IO answers its own path; everything else is not found.
  if (!req.url?.startsWith('/socket.io/')) send(res, 404, error('not_found'));
});

const io = new Server(http, { serveClient: false });
const pub = new Redis(env('REDIS_URL'));
const sub = pub.duplicate();
// /health answers only once both connections are up, so the bench never emits into a queue.
await Promise.all([pub, sub].map((c) => (c.status === 'ready' ? undefined : new Promise((r) => c.once('ready', r)))));
// The default key ("socket.io"): Fluxo's nodes on the same Redis use their own prefix, so neither sees the other's broadcasts.
io.adapter(createAdapter(pub, sub));

io.use(async (socket, next) => {
  const user = await verify((socket.handshake.auth as { token?: string }).token);
  if (!user) return next(new Error('unauthorized'));
  socket.data.user = user;
  next();
});
io.on('connection', (socket) => {
  socket.on('subscribe', (req: { room?: unknown }, ack: (r: unknown) => void) => {
    const room = typeof req?.room === 'string' ? tenantRoom((socket.data.user as User).tid, req.room) : null;
    if (!room) return ack(error('invalid_room'));
    socket.join(room);
    ack({ data: { room: req.room } });
  });
});

process.once('SIGTERM', () => {
  // exit (not the default signal death) so that a CPU profile hook's 'exit' handler runs.
  io.close();
  void sql.end({ timeout: 1 }).finally(() => process.exit(0));
});
http.listen(Number(env('PORT')), '127.0.0.1');
