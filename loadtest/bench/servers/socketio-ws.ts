import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { HOST, PORT, serveSocketIo } from './event.js';

/** Baseline: plain Socket.IO 4.8 on Node's http server with the default `ws` engine — what users pick by default. */
const http = createServer((req, res) => {
  if (req.url === '/health') return void res.writeHead(200).end('ok');
  if (!req.url?.startsWith('/socket.io/')) res.writeHead(404).end();
});
const io = new Server(http, { transports: ['websocket'], serveClient: false });
await serveSocketIo(io);
http.listen(PORT, HOST);
