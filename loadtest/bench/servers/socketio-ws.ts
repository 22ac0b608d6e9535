import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { benchEvent, HOST, listenPublisher, PORT } from './event.js';

/** Baseline: plain Socket.IO 4.8 on Node's http server with the default `ws` engine — what users pick by default. */
const http = createServer((req, res) => {
  if (req.url === '/health') return void res.writeHead(200).end('ok');
  if (!req.url?.startsWith('/socket.io/')) res.writeHead(404).end();
});
const io = new Server(http, { transports: ['websocket'], serveClient: false });
io.on('connection', (socket) => {
  socket.on('subscribe', (req: { room: string }, ack: (r: unknown) => void) => {
    socket.join(req.room);
    ack({ data: { room: req.room } });
  });
});
await listenPublisher((body) => {
  for (let i = 0; i < (body.count ?? 1); i++) io.to(body.room).emit('event', benchEvent(body.room, body.data));
});
http.listen(PORT, HOST);
