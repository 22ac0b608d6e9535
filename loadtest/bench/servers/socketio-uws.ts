import { serveSocketIo } from './event.js';
import { listenUws, socketIoOnUws } from './uws.js';

/** Baseline: bare Socket.IO 4.8 on uWebSockets.js (`attachApp`), no auth, no limits, no metrics. */
const { app, io } = socketIoOnUws();
await serveSocketIo(io);
listenUws(app);
