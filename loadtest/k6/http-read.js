// Process list read path (served by a replica when DATABASE_REPLICA_URLS is set).
//   k6 run -e FLUXO_URL=http://127.0.0.1:8080 -e JWT_SECRET=… [-e RATE=200] [-e DURATION=30s] loadtest/k6/http-read.js
// setup() creates the run's workflow and PROCESSES processes (default 20) in a tenant of its own;
// every VU reads that list and checks it holds exactly those processes — a 200 with an empty or
// foreign list is a failed check, and the run fails below 99 % of checks passed.
import { check } from 'k6';
import http from 'k6/http';
import { BASE, createBoard, headers, jsonOf, vuToken } from './lib.js';

const PROCESSES = Number(__ENV.PROCESSES || 20);
/** The latency bound in ms (p99: twice it); tests that check the work, not the speed, raise it. */
const P95_MS = Number(__ENV.P95_MS || 500);

export const options = {
  scenarios: {
    reads: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 200),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 20,
      maxVUs: 100,
    },
  },
  thresholds: {
    http_req_duration: [`p(95)<${P95_MS}`, `p(99)<${2 * P95_MS}`],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  return createBoard(http, PROCESSES);
}

export default function (run) {
  const res = http.get(`${BASE}/api/processes?workflowId=${run.workflowId}&limit=50`, headers(vuToken(run, `k6-reader-${__VU}`, 'viewer')));
  const items = jsonOf(res, 'data');
  const want = Math.min(50, run.ids.length);
  check(res, {
    'list 200': (r) => r.status === 200,
    "list holds the run's processes": () =>
      Array.isArray(items) && items.length === want && items.every((p) => p.workflowId === run.workflowId && run.ids.includes(p.id)),
  });
}
