// One k6 VU in a worker thread: its own globals and its own module instances, as k6 gives each VU
// its own JS runtime. The script's init code runs when it is imported here, once per VU. Calls that
// are synchronous in k6 (HTTP, WebSocket) are synchronous here too: the VU posts a request to the
// runner (k6.ts) and blocks on Atomics.wait until the reply is on its port.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';

const { scriptUrl, env, vu, role, iterations, setupData, flag: flagBuffer, replies, rpcTimeoutMs } = workerData;
const flag = new Int32Array(flagBuffer);

/** @type {Map<string, { type: string, isTime: boolean, samples: { value: number, tags: Record<string, string> }[] }>} */
const metrics = new Map();

function metric(name, type, isTime = false) {
  let m = metrics.get(name);
  if (!m) {
    m = { type, isTime, samples: [] };
    metrics.set(name, m);
  }
  return m;
}

function rpc(request) {
  Atomics.store(flag, 0, 0);
  parentPort.postMessage({ type: 'rpc', request });
  if (Atomics.wait(flag, 0, 0, rpcTimeoutMs) === 'timed-out')
    throw new Error(`k6 shim: no answer to ${request.op} within ${rpcTimeoutMs} ms`);
  const reply = receiveMessageOnPort(replies);
  if (!reply) throw new Error(`k6 shim: woken without a reply to ${request.op}`);
  return reply.message;
}

globalThis.__ENV = { ...env };
globalThis.__VU = vu;
globalThis.__ITER = 0;
globalThis.__k6 = {
  vu,
  rpc,
  add(name, type, value, tags = {}, isTime = false) {
    metric(name, type, isTime).samples.push({ value: Number(value), tags });
  },
  declare: metric,
  sleepMs(ms) {
    if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  },
};

const errors = [];
const send = (type, extra = {}) =>
  parentPort.postMessage({
    type,
    errors,
    metrics: [...metrics].map(([name, m]) => ({ name, ...m })),
    ...extra,
  });

try {
  const script = await import(scriptUrl);
  if (role === 'setup') {
    // k6 passes setup()'s return value to every VU as a copy of its JSON.
    const data = typeof script.setup === 'function' ? script.setup() : undefined;
    send('setup', { data: data === undefined ? null : JSON.parse(JSON.stringify(data)), options: script.options ?? {} });
  } else {
    const fn = script.default;
    for (let i = 0; i < iterations; i++) {
      globalThis.__ITER = i;
      try {
        fn(setupData === null ? undefined : structuredClone(setupData));
        globalThis.__k6.add('iterations', 'counter', 1);
      } catch (err) {
        // k6 logs the exception, ends the iteration and starts the next one.
        errors.push(`VU ${vu} iteration ${i}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    send('done');
  }
} catch (err) {
  errors.push(`VU ${vu} ${role}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  send('failed');
}
