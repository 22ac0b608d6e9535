import { createApp } from '../../../server/app.js';
import { loadConfig } from '../../../server/config/index.js';
import { internalRoom } from '../../../shared/rooms.js';
import { benchEvent, listenPublisher } from './event.js';

/**
 * "Fluxo, fan-out only" (clearly labelled in the results): a real Fluxo node — auth on connect,
 * tenant rooms, rate limits, metrics, Socket.IO on uWS — but events are handed to its Socket.IO
 * server directly from the bench's publish port instead of being written to the event log first.
 * It isolates the fan-out cost from PGlite's per-event commit, which bounds the full path's rate.
 */
const node = await createApp(loadConfig());
await node.listen();
await listenPublisher((body) => {
  const target = node.io.to(internalRoom(body.tenant ?? '', body.room));
  for (let i = 0; i < (body.count ?? 1); i++) {
    target.emit('event', benchEvent(body.room, body.data) as never);
    node.metrics.eventsEmitted.inc({ type: 'bench' });
  }
});
