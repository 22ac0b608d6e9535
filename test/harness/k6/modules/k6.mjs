// Shim of the `k6` module (check, fail, group, sleep), for test/harness/k6.
const rt = () => globalThis.__k6;

/** Each entry of `sets` adds one sample to `checks` (true when it passed); true when all passed. */
export function check(value, sets, tags = {}) {
  let all = true;
  for (const [name, test] of Object.entries(sets)) {
    const ok = Boolean(typeof test === 'function' ? test(value) : test);
    rt().add('checks', 'rate', ok ? 1 : 0, { check: name, ...tags });
    all &&= ok;
  }
  return all;
}

export function fail(message) {
  throw new Error(message);
}

export function group(_name, fn) {
  return fn();
}

export function sleep(seconds) {
  rt().sleepMs(seconds * 1000);
}

export default { check, fail, group, sleep };
