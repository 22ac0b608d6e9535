// HTTP transition write path. Each VU owns one process and moves it todo ⇄ doing.
//   k6 run -e FLUXO_URL=http://127.0.0.1:8080 -e JWT_SECRET=… [-e RMW=1] loadtest/k6/http-transition.js
// RMW=1 reads the process first and sends expectedVersion (optimistic concurrency); default is blind writes.
// Raise the server's limits for the run: RATE_LIMITS=process:transition=100000/1,http:write=100000/1,http:read=100000/1
import { check } from 'k6';
import http from 'k6/http';
import { BASE, createBoard, headers, token } from './lib.js';

const VUS = Number(__ENV.VUS || 10);

export const options = {
  scenarios: {
    transitions: { executor: 'constant-vus', vus: VUS, duration: __ENV.DURATION || '30s' },
  },
  thresholds: {
    http_req_duration: ['p(95)<500'],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  return createBoard(http, VUS);
}

export default function (board) {
  const id = board.ids[(__VU - 1) % board.ids.length];
  const auth = headers(token(`k6-vu-${__VU}`));
  const body = { to: __ITER % 2 === 0 ? 'doing' : 'todo' };
  if (__ENV.RMW) {
    const cur = http.get(`${BASE}/api/processes/${id}`, auth);
    body.expectedVersion = cur.json('data.version');
    body.to = cur.json('data.stage') === 'todo' ? 'doing' : 'todo';
  }
  const res = http.post(`${BASE}/api/processes/${id}/transition`, JSON.stringify(body), auth);
  check(res, { 'transition 200': (r) => r.status === 200 });
}
