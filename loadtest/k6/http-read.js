// Process list read path (served by a replica when DATABASE_REPLICA_URLS is set).
//   k6 run -e FLUXO_URL=http://127.0.0.1:8080 -e JWT_SECRET=… loadtest/k6/http-read.js
import { check } from 'k6';
import http from 'k6/http';
import { BASE, createBoard, headers, token } from './lib.js';

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
    http_req_duration: ['p(95)<500', 'p(99)<1000'],
    http_req_failed: ['rate<0.01'],
  },
};

export function setup() {
  return createBoard(http, 20);
}

export default function (board) {
  const res = http.get(`${BASE}/api/processes?workflowId=${board.workflowId}&limit=50`, headers(token(`k6-reader-${__VU}`, 'viewer')));
  check(res, { 'list 200': (r) => r.status === 200 });
}
