// Shared by the Fluxo k6 scripts: HS256 tokens minted in k6 itself (no Node needed), and config from env.
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

export const BASE = __ENV.FLUXO_URL || 'http://127.0.0.1:8080';
// The public development secret of `npm start`; pass JWT_SECRET for any other server.
export const SECRET = __ENV.JWT_SECRET || 'fluxo-development-only-secret-do-not-use-in-production';
export const RUN = __ENV.RUN_ID || `k6${Date.now().toString(36)}`;
export const TENANT = `lt-${RUN}-0`;

const b64 = (obj) => encoding.b64encode(JSON.stringify(obj), 'rawurl');

export function token(sub, role = 'editor', tid = TENANT) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, tid, role, iat: now, exp: now + 3600, jti: `${sub}-${now}-${Math.random()}` })}`;
  return `${body}.${crypto.hmac('sha256', SECRET, body, 'base64rawurl')}`;
}

export function headers(tok) {
  return { headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' } };
}

/** Creates a todo ⇄ doing workflow and one process per VU; returns what the VUs need. */
export function createBoard(http, processes) {
  const admin = token('k6-admin', 'admin');
  const wf = http.post(
    `${BASE}/api/workflows`,
    JSON.stringify({ name: 'k6', stages: ['todo', 'doing'], transitions: { todo: ['doing'], doing: ['todo'] } }),
    headers(admin),
  );
  if (wf.status !== 201) throw new Error(`create workflow: ${wf.status} ${wf.body}`);
  const workflowId = wf.json('data.id');
  const ids = [];
  for (let i = 0; i < processes; i++) {
    const p = http.post(`${BASE}/api/processes`, JSON.stringify({ workflowId, title: `k6 ${i}` }), headers(admin));
    if (p.status !== 201) throw new Error(`create process: ${p.status} ${p.body}`);
    ids.push(p.json('data.id'));
  }
  return { workflowId, ids };
}
