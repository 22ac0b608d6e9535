// HTTP transition write path. Each VU owns one process of the run and moves it todo ⇄ doing.
//   k6 run -e FLUXO_URL=http://127.0.0.1:8080 -e JWT_SECRET=… [-e VUS=10] [-e DURATION=30s] [-e RMW=1] loadtest/k6/http-transition.js
// setup() creates the run's workflow and one process per VU (VUS, default 10) in a tenant of its own.
// Default: blind writes (no expectedVersion). RMW=1: read the process, then write with its version
// (optimistic concurrency); the pair is one logical operation, timed as fluxo_rmw_duration.
// Raise the server's limits for the run: RATE_LIMITS=process:transition=100000/1,http:write=100000/1,http:read=100000/1
import { check } from 'k6';
import http from 'k6/http';
import { Trend } from 'k6/metrics';
import { BASE, createBoard, headers, jsonOf, vuToken } from './lib.js';

const VUS = Number(__ENV.VUS || 10);
/** The latency bound in ms; tests that check the work, not the speed, raise it. */
const P95_MS = Number(__ENV.P95_MS || 500);
const RMW = Boolean(__ENV.RMW);
const rmwDuration = new Trend('fluxo_rmw_duration', true);

export const options = {
  scenarios: {
    transitions: { executor: 'constant-vus', vus: VUS, duration: __ENV.DURATION || '30s' },
  },
  thresholds: {
    http_req_duration: [`p(95)<${P95_MS}`],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  return createBoard(http, VUS);
}

const next = (stage) => (stage === 'todo' ? 'doing' : 'todo');
// This VU's view of its process (module state is per VU); a new process starts in `todo`.
let stage = 'todo';

export default function (run) {
  const id = run.ids[(__VU - 1) % run.ids.length];
  const auth = headers(vuToken(run, `k6-vu-${__VU}`));
  const started = Date.now();
  const body = { to: next(stage) };
  if (RMW) {
    const cur = http.get(`${BASE}/api/processes/${id}`, auth);
    const p = jsonOf(cur, 'data');
    if (!check(cur, { 'read 200': (r) => r.status === 200 && p && p.id === id })) return;
    body.to = next(p.stage);
    body.expectedVersion = p.version;
  }
  const res = http.post(`${BASE}/api/processes/${id}/transition`, JSON.stringify(body), auth);
  const moved = jsonOf(res, 'data.process');
  if (RMW) rmwDuration.add(Date.now() - started);
  check(res, {
    'transition 200': (r) => r.status === 200,
    'moved where asked': () => Boolean(moved) && moved.id === id && moved.stage === body.to,
  });
  if (moved && moved.id === id) stage = moved.stage;
  else if (!RMW) {
    // A failed blind write leaves this VU unsure of the stage: read it back before the next one.
    const p = jsonOf(http.get(`${BASE}/api/processes/${id}`, auth), 'data');
    if (p?.stage) stage = p.stage;
  }
}
