// WebSocket fan-out: each VU is a Socket.IO client speaking Engine.IO v4 framing over k6/ws, subscribes
// to the run's tenant room and counts the run's events; VU 1 also publishes them through the publish API.
//   k6 run -e FLUXO_URL=http://127.0.0.1:8080 -e JWT_SECRET=… -e PUBLISH_API_KEY=… [-e VUS=50] [-e HOLD_MS=20000] loadtest/k6/ws-fanout.js
// setup() makes the run's tenant (all VUs subscribe there) and checks the publish API takes events
// for it; without PUBLISH_API_KEY, or with the wrong one, the run stops there.
// Frames: `0{…}` open → send `40{"token":…}` (CONNECT with auth) → `40{"sid":…}` → send
// `420["subscribe",{"room":"tenant"}]` → `430[{"data":…}]` ack; `42["event",{…}]` events; `2` ping → `3` pong.
import { check } from 'k6';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import ws from 'k6/ws';
import { BASE, newRun, vuToken } from './lib.js';

const events = new Counter('fluxo_events_received');
const latency = new Trend('fluxo_event_latency', true);
const connectErrors = new Counter('fluxo_connect_errors');
const HOLD_MS = Number(__ENV.HOLD_MS || 20000);
/** The latency bound in ms; tests that check the work, not the speed, raise it. */
const P95_MS = Number(__ENV.P95_MS || 500);
// Publishing starts after this head start (every subscriber has joined by then) and stops a second
// before the subscribers hang up, so the last events still arrive.
const PUBLISH_AFTER_MS = Number(__ENV.PUBLISH_AFTER_MS || 3000);
const PUBLISH_EVERY_MS = Number(__ENV.PUBLISH_EVERY_MS || 100);
const KEY = __ENV.PUBLISH_API_KEY;

export const options = {
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus: Number(__ENV.VUS || 50), iterations: 1, maxDuration: '2m' },
  },
  thresholds: {
    checks: ['rate>0.99'],
    http_req_failed: ['rate<0.01'],
    fluxo_event_latency: [`p(95)<${P95_MS}`],
    fluxo_connect_errors: ['count<1'],
    fluxo_events_received: ['count>0'],
  },
};

function publish(run, n) {
  return http.post(
    `${BASE}/api/publish`,
    JSON.stringify({ tenant: run.tenant, room: 'tenant', type: 'k6', data: { run: run.run, n, pad: 'x'.repeat(100) } }),
    {
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    },
  );
}

export function setup() {
  if (!KEY) throw new Error("setup: pass the server's publish API key: -e PUBLISH_API_KEY=…");
  const run = newRun();
  // One event before anyone subscribes: proves the key and the API (404 when the server has no key).
  const res = publish(run, 0);
  if (res.status !== 201) throw new Error(`setup: POST ${BASE}/api/publish: HTTP ${res.status} ${res.error || res.body}`);
  return run;
}

export default function (run) {
  const url = `${BASE.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
  let subscribed = false;
  let received = 0;
  let res = null;
  try {
    res = ws.connect(url, {}, (socket) => {
      socket.on('message', (msg) => {
        if (msg === '2') return socket.send('3');
        if (msg[0] === '0') return socket.send(`40${JSON.stringify({ token: vuToken(run, `k6-sub-${__VU}`, 'viewer') })}`);
        if (msg.startsWith('44')) {
          connectErrors.add(1);
          return socket.close();
        }
        if (msg.startsWith('40')) return socket.send('420["subscribe",{"room":"tenant"}]');
        if (msg.startsWith('430')) {
          const ack = JSON.parse(msg.slice(3))[0];
          subscribed = Boolean(ack?.data);
          if (subscribed && __VU === 1) publishLoop(socket, run);
          return;
        }
        if (msg.startsWith('42["event"')) {
          const ev = JSON.parse(msg.slice(2))[1];
          // Only the run's own events count (the tenant is the run's, but be sure).
          if (!ev.data || ev.data.run !== run.run) return;
          received++;
          events.add(1);
          latency.add(Date.now() - Date.parse(ev.at));
        }
      });
      socket.setTimeout(() => socket.close(), HOLD_MS);
    });
  } catch (err) {
    connectErrors.add(1);
    console.error(`VU ${__VU}: ${err}`);
  }
  check(res, {
    'upgraded 101': (r) => Boolean(r) && r.status === 101,
    subscribed: () => subscribed,
    "received the run's events": () => received > 0,
  });
}

function publishLoop(socket, run) {
  let n = 0;
  const stopAt = Date.now() + HOLD_MS - 1000;
  socket.setTimeout(() => {
    socket.setInterval(() => {
      if (Date.now() >= stopAt) return;
      const res = publish(run, ++n);
      check(res, { 'publish 201': (r) => r.status === 201 });
    }, PUBLISH_EVERY_MS);
  }, PUBLISH_AFTER_MS);
}
