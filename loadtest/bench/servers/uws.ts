import uWS from 'uWebSockets.js';
import { Server } from 'socket.io';
import { HOST, PORT } from './event.js';

/* The uWebSockets.js baselines' shared set-up, apart so that the node:http baseline never loads uWS. */

/** Bare Socket.IO 4.8 on uWebSockets.js (`attachApp`): no auth, no limits, no metrics. */
export function socketIoOnUws(): { app: uWS.TemplatedApp; io: Server } {
  const app = uWS.App();
  const io = new Server({ transports: ['websocket'], serveClient: false });
  io.attachApp(app);
  return { app, io };
}

/** Serves `/health` and listens on PORT; the health check is the bench's sign that the server is up. */
export function listenUws(app: uWS.TemplatedApp): void {
  app.get('/health', (res) => void res.end('ok'));
  app.listen(HOST, PORT, (ok) => {
    if (!ok) process.exit(1);
  });
}
