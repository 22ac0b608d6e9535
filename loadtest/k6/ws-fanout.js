// WebSocket fan-out: each VU is a Socket.IO client speaking Engine.IO v4 framing over k6/ws,
// subscribes to its tenant room and counts events; VU 1 also publishes through the publish API.
//   k6 run -e FLUXO_URL=http://127.0.0.1:8080 -e PUBLISH_API_KEY=… -e JWT_SECRET=… loadtest/k6/ws-fanout.js
// Frames: `0{…}` open → send `40{"token":…}` (CONNECT with auth) → `40{"sid":…}` → send
// `420["subscribe",{"room":"tenant"}]` → `430[{data:…}]` ack; `42["event",{…}]` events; `2` ping → `3` pong.
import { check } from 'k6';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import ws from 'k6/ws';
import { BASE, TENANT, token } from './lib.js';

const events = new Counter('fluxo_events_received');
const latency = new Trend('fluxo_event_latency', true);
const connectErrors = new Counter('fluxo_connect_errors');
const HOLD_MS = Number(__ENV.HOLD_MS || 20000);

export const options = {
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus: Number(__ENV.VUS || 50), iterations: 1, maxDuration: '2m' },
  },
  thresholds: {
    fluxo_event_latency: ['p(95)<500'],
    fluxo_connect_errors: ['count<1'],
  },
};

export default function () {
  const url = `${BASE.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
  const res = ws.connect(url, {}, (socket) => {
    socket.on('message', (msg) => {
      if (msg === '2') return socket.send('3');
      if (msg[0] === '0') return socket.send(`40${JSON.stringify({ token: token(`k6-sub-${__VU}`, 'viewer') })}`);
      if (msg.startsWith('40')) {
        socket.send('420["subscribe",{"room":"tenant"}]');
        if (__VU === 1) publishLoop(socket);
        return;
      }
      if (msg.startsWith('44')) {
        connectErrors.add(1);
        return socket.close();
      }
      if (msg.startsWith('42["event"')) {
        const ev = JSON.parse(msg.slice(2))[1];
        events.add(1);
        latency.add(Date.now() - Date.parse(ev.at));
      }
    });
    socket.setTimeout(() => socket.close(), HOLD_MS);
  });
  check(res, { 'upgraded 101': (r) => r && r.status === 101 });
}

function publishLoop(socket) {
  const key = __ENV.PUBLISH_API_KEY;
  if (!key) return;
  // Publish every 100 ms after a head start, so every subscriber has joined.
  socket.setTimeout(() => {
    socket.setInterval(() => {
      http.post(`${BASE}/api/publish`, JSON.stringify({ tenant: TENANT, room: 'tenant', type: 'k6', data: { pad: 'x'.repeat(100) } }), {
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      });
    }, 100);
  }, 3000);
}
