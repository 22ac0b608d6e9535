// Shared by the Fluxo k6 scripts: HS256 tokens minted in k6 itself (no Node needed), config from env,
// and the run's board.
//
// k6 runs init code — this file's top level included — once per VU, each VU in its own JS runtime
// (and once more for setup()): nothing computed here is shared between VUs, and anything random or
// time-based would differ in every VU. What all VUs must share (the run id, its tenant, its
// workflow and processes) is made in setup(), whose return value k6 passes to every VU's default
// function. Never derive a tenant, run id or id here.
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

/** The node under test: -e FLUXO_URL=…, else http://localhost:8080 (what `npm start` listens on). */
export const BASE = (__ENV.FLUXO_URL || 'http://localhost:8080').replace(/\/+$/, '');
// The public development secret of `npm start`; pass JWT_SECRET for any other server.
const SECRET = __ENV.JWT_SECRET || 'fluxo-development-only-secret-do-not-use-in-production';

const b64 = (obj) => encoding.b64encode(JSON.stringify(obj), 'rawurl');

/** An HS256 token for `sub` in `tenant`. */
export function token(tenant, sub, role = 'editor') {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, tid: tenant, role, iat: now, exp: now + 3600, jti: `${sub}-${now}-${Math.random()}` })}`;
  return `${body}.${crypto.hmac('sha256', SECRET, body, 'base64rawurl')}`;
}

// Per VU (module state is per VU): one token per user, renewed before it expires.
const minted = {};

/** This VU's token for `sub` in the run's tenant, minted once and renewed every half hour. */
export function vuToken(run, sub, role = 'editor') {
  const key = `${run.tenant} ${sub} ${role}`;
  const now = Date.now();
  if (!minted[key] || now - minted[key].at > 30 * 60 * 1000) minted[key] = { at: now, token: token(run.tenant, sub, role) };
  return minted[key].token;
}

export function headers(tok) {
  return { headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' } };
}

/** `res.json(path)`, or undefined when the body is not JSON (k6's json() throws then). */
export function jsonOf(res, path) {
  try {
    return res.json(path);
  } catch {
    return undefined;
  }
}

/**
 * For setup() only: the run's id and tenant (`lt-<run>-0`, as `npm run loadtest` names its tenants).
 * -e RUN_ID=… fixes the id, to find the run's rows afterwards.
 */
export function newRun() {
  const run = __ENV.RUN_ID || `k6${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  return { run, tenant: `lt-${run}-0` };
}

/**
 * For setup() only: a new run with a todo ⇄ doing workflow and `processes` processes in its tenant.
 * Throws on any failure, so that k6 aborts the run instead of measuring errors.
 */
export function createBoard(http, processes) {
  const run = newRun();
  const admin = headers(token(run.tenant, 'k6-admin', 'admin'));
  const wf = http.post(
    `${BASE}/api/workflows`,
    JSON.stringify({ name: 'k6', stages: ['todo', 'doing'], transitions: { todo: ['doing'], doing: ['todo'] } }),
    admin,
  );
  if (wf.status !== 201) throw new Error(`setup: create workflow at ${BASE}: HTTP ${wf.status} ${wf.error || wf.body}`);
  const workflowId = wf.json('data.id');
  const ids = [];
  for (let i = 0; i < processes; i++) {
    const p = http.post(`${BASE}/api/processes`, JSON.stringify({ workflowId, title: `k6 ${i}` }), admin);
    if (p.status !== 201) throw new Error(`setup: create process: HTTP ${p.status} ${p.error || p.body}`);
    ids.push(p.json('data.id'));
  }
  return { ...run, workflowId, ids };
}
