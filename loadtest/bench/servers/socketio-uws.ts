import uWS from 'uWebSockets.js';
import { Server } from 'socket.io';
import { benchEvent, HOST, listenPublisher, PORT } from './event.js';

/** Baseline: bare Socket.IO 4.8 on uWebSockets.js (`attachApp`), no auth, no limits, no metrics. */
const app = uWS.App();
const io = new Server({ transports: ['websocket'], serveClient: false });
io.attachApp(app);
io.on('connection', (socket) => {
  socket.on('subscribe', (req: { room: string }, ack: (r: unknown) => void) => {
    socket.join(req.room);
    ack({ data: { room: req.room } });
  });
});
app.get('/health', (res) => void res.end('ok'));
await listenPublisher((body) => {
  for (let i = 0; i < (body.count ?? 1); i++) io.to(body.room).emit('event', benchEvent(body.room, body.data));
});
app.listen(HOST, PORT, (ok) => {
  if (!ok) process.exit(1);
});
