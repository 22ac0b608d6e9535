// Shim of `k6/ws`: connect() blocks the VU and runs the socket's own event loop — handlers and
// socket timers in one thread — until the socket closes, as in k6.
const rt = () => globalThis.__k6;

export function connect(url, params, callback) {
  const cb = typeof params === 'function' ? params : callback;
  const opts = typeof params === 'function' ? {} : (params ?? {});
  const started = Date.now();
  const opened = rt().rpc({ op: 'ws.open', url, headers: opts.headers ?? {} });
  rt().add('ws_connecting', 'trend', Date.now() - started, {}, true);
  if (opened.error) {
    rt().add('ws_sessions', 'counter', 1, { status: '0' });
    throw new Error(`k6 shim: websocket ${url}: ${opened.error}`);
  }
  const handlers = new Map();
  const timers = [];
  let nextTimer = 0;
  let closed = false;
  const socket = {
    on(event, fn) {
      handlers.set(event, fn);
    },
    send(data) {
      if (!closed) rt().rpc({ op: 'ws.send', id: opened.id, data });
      rt().add('ws_msgs_sent', 'counter', 1);
    },
    close() {
      if (!closed) rt().rpc({ op: 'ws.close', id: opened.id });
    },
    ping() {},
    setTimeout(fn, ms) {
      timers.push({ id: ++nextTimer, at: Date.now() + ms, fn, every: 0 });
    },
    setInterval(fn, ms) {
      timers.push({ id: ++nextTimer, at: Date.now() + ms, fn, every: Math.max(1, ms) });
    },
  };
  const fire = (event, ...args) => handlers.get(event)?.(...args);
  cb(socket);
  fire('open');
  const deadline = Date.now() + 10 * 60_000;
  while (!closed) {
    if (Date.now() > deadline) throw new Error('k6 shim: a websocket session ran for 10 minutes');
    const due = timers.length ? Math.min(...timers.map((t) => t.at)) : Date.now() + 1000;
    const ev = rt().rpc({ op: 'ws.next', id: opened.id, timeoutMs: Math.max(0, due - Date.now()) });
    if (ev.type === 'message') {
      rt().add('ws_msgs_received', 'counter', 1);
      fire('message', ev.data);
    } else if (ev.type === 'error') fire('error', { error: () => ev.error });
    else if (ev.type === 'close') {
      closed = true;
      fire('close', ev.code);
      break;
    }
    const now = Date.now();
    for (const t of [...timers].sort((a, b) => a.at - b.at)) {
      if (t.at > now || closed) continue;
      if (t.every) t.at += t.every;
      else timers.splice(timers.indexOf(t), 1);
      t.fn();
    }
  }
  rt().add('ws_sessions', 'counter', 1, { status: String(opened.status) });
  rt().add('ws_session_duration', 'trend', Date.now() - started, {}, true);
  return { url, status: opened.status, headers: opened.headers ?? {}, body: '', error: '' };
}

export default { connect };
