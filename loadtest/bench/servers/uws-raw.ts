import uWS from 'uWebSockets.js';
import { benchEvent, listenPublisher } from './event.js';
import { listenUws } from './uws.js';

/**
 * Near-limit reference: raw uWebSockets.js pub/sub with a JSON protocol. A client sends
 * `{"subscribe":"room"}` and gets `{"subscribed":"room"}`; events arrive as the bare event JSON.
 */
const app = uWS.App();
app.ws('/ws', {
  maxPayloadLength: 64 * 1024,
  idleTimeout: 120,
  message: (ws, msg) => {
    const req = JSON.parse(Buffer.from(msg).toString()) as { subscribe?: string };
    if (req.subscribe) {
      ws.subscribe(req.subscribe);
      ws.send(JSON.stringify({ subscribed: req.subscribe }));
    }
  },
});
await listenPublisher((body) => {
  for (let i = 0; i < (body.count ?? 1); i++) app.publish(body.room, JSON.stringify(benchEvent(body.room, body.data)));
});
listenUws(app);
