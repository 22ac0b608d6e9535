import type { Server } from 'socket.io';

/**
 * The event the baseline servers broadcast: the same fields as a Fluxo event (see shared/protocol.ts),
 * with ~100 bytes of data, so every engine serialises and sends a comparable payload.
 */
let nextId = 1;
export function benchEvent(room: string, data: unknown): Record<string, unknown> {
  return {
    id: nextId++,
    type: 'bench',
    rooms: [room],
    processId: null,
    workflowId: null,
    fromStage: null,
    toStage: null,
    version: null,
    actor: 'api',
    at: new Date().toISOString(),
    data,
  };
}

export const PORT = Number(process.env.PORT ?? 0);
export const HOST = '127.0.0.1';

/** A publish request body: `{ room, data, count? }`; `count` events are sent back to back. */
export interface PublishBody {
  room: string;
  data: unknown;
  count?: number;
}

/**
 * Every engine takes publishes the same way: POST on a plain node:http port (SIDE_PORT), outside the
 * WebSocket server's own event handlers. Publishing from inside a uWS HTTP handler instead changes
 * how uWS corks and batches the broadcast, which would measure the harness rather than the engine.
 */
export async function listenPublisher(onPublish: (body: PublishBody & { tenant?: string }) => void): Promise<void> {
  const { createServer } = await import('node:http');
  const side = createServer((req, res) => {
    if (req.method !== 'POST') return void res.writeHead(404).end();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      onPublish(JSON.parse(Buffer.concat(chunks).toString()) as PublishBody);
      res.writeHead(201, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => side.listen(Number(process.env.SIDE_PORT), HOST, resolve));
}

/** What every Socket.IO baseline does: joins a room on `subscribe` (acked as Fluxo acks it), broadcasts what is published. */
export async function serveSocketIo(io: Server): Promise<void> {
  io.on('connection', (socket) => {
    socket.on('subscribe', (req: { room: string }, ack: (r: unknown) => void) => {
      socket.join(req.room);
      ack({ data: { room: req.room } });
    });
  });
  await listenPublisher((body) => {
    for (let i = 0; i < (body.count ?? 1); i++) io.to(body.room).emit('event', benchEvent(body.room, body.data));
  });
}
