// Shim of `k6/http`: synchronous requests, made by the runner with fetch while the VU blocks.
const rt = () => globalThis.__k6;

/** The subset of gjson paths the Fluxo scripts use: `a.b.0.c`, `a.#` (length). */
function select(value, path) {
  let v = value;
  for (const part of path.split('.')) {
    if (v === null || v === undefined) return undefined;
    v = part === '#' && Array.isArray(v) ? v.length : v[part];
  }
  return v;
}

class Response {
  constructor(request, reply) {
    this.request = request;
    this.url = request.url;
    this.status = reply.status;
    this.body = reply.body;
    this.headers = reply.headers ?? {};
    this.error = reply.error ?? '';
    this.error_code = reply.error ? 1000 : 0;
    this.timings = { duration: reply.durationMs };
  }

  /** Like k6: throws when the body is not JSON; with a selector, undefined when the path is absent. */
  json(selector) {
    const parsed = JSON.parse(this.body);
    return selector === undefined ? parsed : select(parsed, selector);
  }
}

export function request(method, url, body, params = {}) {
  const req = {
    method,
    url: String(url),
    body: body === undefined || body === null ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    headers: { ...(params.headers ?? {}) },
  };
  const timeoutMs = typeof params.timeout === 'number' ? params.timeout : 60_000;
  const reply = rt().rpc({ op: 'http', ...req, timeoutMs });
  const res = new Response(req, reply);
  const tags = { method, status: String(res.status), ...(params.tags ?? {}) };
  // k6's default expected statuses are 200–399; status 0 is a transport error.
  const failed = res.status < 200 || res.status >= 400;
  rt().add('http_reqs', 'counter', 1, tags);
  rt().add('http_req_duration', 'trend', reply.durationMs, tags, true);
  rt().add('http_req_failed', 'rate', failed ? 1 : 0, tags);
  return res;
}

export const get = (url, params) => request('GET', url, undefined, params);
export const post = (url, body, params) => request('POST', url, body, params);
export const put = (url, body, params) => request('PUT', url, body, params);
export const patch = (url, body, params) => request('PATCH', url, body, params);
export const del = (url, body, params) => request('DELETE', url, body, params);

export default { request, get, post, put, patch, del };
