/**
 * The fuzzer's engine: turns a case (arbitraries.ts) into bytes on the wire against a real node
 * (target.ts), reads what came back, and checks the invariants after each batch:
 *
 * 1. the node process is alive and `/health` answers 200;
 * 2. every request got a typed answer — an HTTP status with `{error:{code}}` whose code is in
 *    ERROR_CODES (and whose status is that code's), or a Socket.IO ack `{data}` / `{error:{code}}` —
 *    or a protocol-level close; never `internal`, never a 5xx;
 * 3. the spy (another tenant, subscribed to its rooms all along) received nothing but its own
 *    barrier events (checked after a barrier event it must receive; everything sent before has
 *    arrived by then), and no fuzzer socket received anything of the spy's tenant;
 * 4. no row was written by a refused request: the rows counted in Postgres grew by exactly what
 *    the accepted requests wrote (plus the barrier), give or take requests that got no answer;
 * 5. no error-level line (pino level ≥ 50, or a non-JSON stderr line) was logged during the batch.
 */
import { createHmac, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Decoder } from 'socket.io-parser';
import { DEV_JWT_SECRET } from '../../server/auth/dev-secret.js';
import { ERROR_CODES, ERRORS, type ErrorCode } from '../../shared/errors.js';
import { openSession, type RawResult, type RawSession, rawHttp, sioPackets } from '../harness/wire.js';
import { batchArb, type Case, type Frame, type HttpCase, type J, type Piece, type SocketCase, type TokenSpec } from './arbitraries.js';
import { COUNTED, type Counts, type Ids, SECRET, type SpyEntry, type Target } from './target.js';

// ─── Writing a case out ─────────────────────────────────────────────────────────────────────────

/** Values of the placeholders of one case. */
export type Values = Record<string, string>;

export function placeholderValues(ids: Ids, publishKey: string, tok: string, tok2: string): Values {
  return {
    fzT: ids.fzTenant,
    fzU: ids.fzUser,
    fzW: ids.fzWorkflow,
    fzP0: ids.fzProcesses[0] ?? 'none',
    fzP1: ids.fzProcesses[1] ?? 'none',
    fzP2: ids.fzProcesses[2] ?? 'none',
    fzP3: ids.fzProcesses[3] ?? 'none',
    spyT: ids.spyTenant,
    spyU: ids.spyUser,
    spyW: ids.spyWorkflow,
    spyP: ids.spyProcess,
    tok,
    tok2,
    pk: publishKey,
  };
}

const resolve = (s: string, v: Values) => s.replace(/⟦(\w+)⟧/g, (m, name: string) => v[name] ?? m);

/** A J as JSON text: markers expanded, keys written as they are (`__proto__` included), lone surrogates escaped. */
export function jsonText(j: J, v: Values): string {
  if (j === null || typeof j === 'boolean') return String(j);
  if (typeof j === 'number') return Number.isFinite(j) ? JSON.stringify(j) : 'null';
  if (typeof j === 'string') return JSON.stringify(resolve(j, v));
  if (Array.isArray(j)) return `[${j.map((x) => jsonText(x, v)).join(',')}]`;
  const o = j as Record<string, J>;
  if (typeof o.$rep === 'string' && typeof o.n === 'number') return JSON.stringify(o.$rep.repeat(o.n));
  if (typeof o.$deep === 'number') {
    const n = o.$deep;
    const inner = jsonText(o.inner ?? null, v);
    return o.kind === 'object' ? `${'{"a":'.repeat(n)}${inner}${'}'.repeat(n)}` : `${'['.repeat(n)}${inner}${']'.repeat(n)}`;
  }
  return `{${Object.keys(o)
    .map((k) => `${JSON.stringify(resolve(k, v))}:${jsonText(o[k] as J, v)}`)
    .join(',')}}`;
}

export function pieceText(pieces: Piece[], v: Values): string {
  return pieces
    .map((p) => {
      if (typeof p === 'string') return resolve(p, v);
      if ('$rep' in p) return p.$rep.repeat(p.n);
      if ('$json' in p) return jsonText(p.$json, v);
      return Buffer.from(p.$b64, 'base64').toString('latin1');
    })
    .join('');
}

/** Bytes of pieces: text as UTF-8, `$b64` pieces as their raw bytes. */
export function pieceBytes(pieces: Piece[], v: Values): Buffer {
  return Buffer.concat(
    pieces.map((p) => (typeof p === 'object' && '$b64' in p ? Buffer.from(p.$b64, 'base64') : Buffer.from(pieceText([p], v), 'utf8'))),
  );
}

/**
 * Mints the JWT a TokenSpec describes, written by hand (header and claims as JSON text, so claims
 * nested 50,000 deep or with `__proto__` keys are possible), HMAC-signed or unsigned. The fuzzer
 * never holds a correctly signed token of the spy's tenant.
 */
export async function mintSpec(spec: TokenSpec, ids: Ids, publishKey: string): Promise<string> {
  const v = placeholderValues(ids, publishKey, '', '');
  const now = Math.floor(Date.now() / 1000);
  const claims: [string, string][] = [['iat', String(now)]];
  const tid = spec.tid === 'fz' ? ids.fzTenant : spec.tid === 'spy' ? ids.spyTenant : spec.tid === null ? null : resolve(spec.tid, v);
  if (tid !== null) claims.push(['tid', JSON.stringify(spec.key === 'right' && tid === ids.spyTenant ? ids.fzTenant : tid)]);
  if (spec.sub !== null) claims.push(['sub', JSON.stringify(resolve(spec.sub, v))]);
  if (spec.role !== null) claims.push(['role', JSON.stringify(spec.role)]);
  if (spec.exp === 'future') claims.push(['exp', String(now + 3600)]);
  else if (spec.exp === 'past') claims.push(['exp', String(now - 3600)]);
  else if (spec.exp !== 'missing') claims.push(['exp', jsonText(spec.exp, v)]);
  if (spec.nbf === 'future') claims.push(['nbf', String(now + 3600)]);
  else if (spec.nbf === 'past') claims.push(['nbf', String(now - 60)]);
  if (spec.iss !== undefined) claims.push(['iss', jsonText(spec.iss, v)]);
  if (spec.aud !== undefined) claims.push(['aud', jsonText(spec.aud, v)]);
  if (spec.name !== undefined) claims.push(['name', jsonText(spec.name, v)]);
  // Unique, so that a logout revokes this case's token only (and adds exactly one row).
  claims.push(['nonce', JSON.stringify(randomUUID())]);
  if (spec.jti === 'unique') claims.push(['jti', JSON.stringify(randomUUID())]);
  else if (spec.jti !== 'absent') claims.push(['jti', jsonText(spec.jti, v)]);
  const header: [string, string][] = [['typ', '"JWT"']];
  for (const [k, j] of Object.entries(spec.extraHeader ?? {})) if (k !== 'alg') header.push([k, jsonText(j, v)]);
  header.push(['alg', JSON.stringify(spec.key === 'none' ? 'none' : spec.alg)]);
  const obj = (pairs: [string, string][]) => `{${pairs.map(([k, val]) => `${JSON.stringify(k)}:${val}`).join(',')}}`;
  const input = `${Buffer.from(obj(header)).toString('base64url')}.${Buffer.from(obj(claims)).toString('base64url')}`;
  const key =
    spec.key === 'right'
      ? SECRET
      : spec.key === 'wrong'
        ? 'a-wrong-secret-that-is-long-enough-for-hs256'
        : spec.key === 'dev'
          ? DEV_JWT_SECRET
          : '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n';
  const hash = /384/.test(spec.alg) ? 'sha384' : /512/.test(spec.alg) ? 'sha512' : 'sha256';
  const t = spec.key === 'none' ? `${input}.` : `${input}.${createHmac(hash, key).update(input).digest('base64url')}`;
  switch (spec.mangle) {
    case 'truncate':
      return t.slice(0, -5);
    case 'flip':
      return t.slice(0, -1) + (t.endsWith('A') ? 'B' : 'A');
    case 'dot':
      return `${t}.`;
    case 'pad':
      return t + 'A'.repeat(9000);
    case 'space':
      return ` ${t}`;
    case 'lower':
      return t.toLowerCase();
    default:
      return t;
  }
}

// ─── What a case did ────────────────────────────────────────────────────────────────────────────

/** Rows a case wrote for sure (accepted writes), and may have written (writes that got no answer). */
type Delta = Partial<Record<keyof Counts, number>>;

export interface Outcome {
  /** Invariant violations, each a line. */
  failures: string[];
  /** Off, but allowed (reported, not failed). */
  notes: string[];
  wrote: Delta;
  mayHaveWritten: Delta;
  /** Events the fuzzer legitimately published to the spy's tenant (ids), which the spy will get. */
  spyEvents: number[];
  requests: number;
  frames: number;
  /** Short account for a failure report. */
  summary: string;
  ms: number;
}

function newOutcome(): Outcome {
  return { failures: [], notes: [], wrote: {}, mayHaveWritten: {}, spyEvents: [], requests: 0, frames: 0, summary: '', ms: 0 };
}

const add = (d: Delta, k: keyof Counts, n = 1) => {
  d[k] = (d[k] ?? 0) + n;
};

/** Whether `body` is a catalog error body for `status`; the reason otherwise. */
function typedError(body: unknown, status?: number): string | null {
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (!err || typeof err !== 'object') return 'no {error} object';
  if (typeof err.code !== 'string' || !ERROR_CODES.includes(err.code as ErrorCode))
    return `code ${JSON.stringify(err.code)} not in the catalog`;
  if (typeof err.message !== 'string') return 'no message';
  if (err.code === 'internal') return 'internal error';
  if (status !== undefined && ERRORS[err.code as ErrorCode].status !== status)
    return `status ${status} is not ${err.code}'s ${ERRORS[err.code as ErrorCode].status}`;
  return null;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STRICT_METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** A request any HTTP/1.1 server must answer (as opposed to bytes it may refuse by closing). */
function wellFormed(method: string, target: Buffer, headers: [string, Buffer][], body: Buffer | null, maxPayload: number): boolean {
  if (!STRICT_METHODS.has(method)) return false;
  if (target.length === 0 || target.length > 2048 || target[0] !== 0x2f) return false;
  for (const b of target) if (b <= 0x20 || b >= 0x7f) return false;
  if (headers.length > 20) return false;
  const seen = new Set<string>();
  for (const [k, v] of headers) {
    const name = k.toLowerCase();
    if (!TOKEN.test(k) || v.length > 4096) return false;
    for (const b of v) if ((b < 0x20 && b !== 0x09) || b >= 0x7f) return false;
    if (['expect', 'upgrade', 'transfer-encoding', 'content-length', 'host'].includes(name)) return false;
    if (name === 'connection' && /upgrade/i.test(v.toString())) return false;
    if (seen.has(name) && (name === 'authorization' || name === 'content-type')) return false;
    seen.add(name);
  }
  // A body over the limit is refused with 413 and the connection closed, possibly before we finish writing it.
  return !body || body.length <= maxPayload;
}

export async function runHttp(t: Target, c: HttpCase): Promise<Outcome> {
  const out = newOutcome();
  out.requests = 1;
  const tok = c.token ? await mintSpec(c.token, t.ids, t.publishKey) : '';
  const tok2 = c.token2 ? await mintSpec(c.token2, t.ids, t.publishKey) : '';
  const v = placeholderValues(t.ids, t.publishKey, tok, tok2);
  const target = pieceBytes(c.target, v);
  const headers: [string, Buffer][] = c.headers.map(([k, p]) => [k, pieceBytes(p, v)]);
  const body = c.body ? pieceBytes(c.body, v) : null;
  const u = new URL(t.url);
  const head = Buffer.concat([
    Buffer.from(`${c.method} `, 'latin1'),
    target,
    Buffer.from(` HTTP/1.1\r\nHost: ${u.host}\r\n`, 'latin1'),
    ...headers.map(([k, val]) => Buffer.concat([Buffer.from(`${k}: `, 'latin1'), val, Buffer.from('\r\n')])),
    Buffer.from(body ? `Content-Length: ${body.length}\r\n\r\n` : '\r\n', 'latin1'),
  ]);
  const strict = wellFormed(c.method, target, headers, body, t.maxPayloadBytes);
  // A malformed request may leave the server waiting for the rest of it (until its idle timeout).
  const r: RawResult = await rawHttp(t.url, {
    method: c.method,
    target: '',
    raw: body ? Buffer.concat([head, body]) : head,
    localAddress: `127.0.${c.from}.1`,
    timeoutMs: strict ? 15_000 : 1000,
  });
  const path = target.toString('latin1').split('?')[0] ?? '';
  out.summary = `${c.method} ${target.toString('latin1').slice(0, 120)} → ${r.kind === 'response' ? r.status : r.kind}`;
  if (r.kind !== 'response') {
    if (r.kind === 'timeout') {
      if (strict) out.failures.push('no answer within 15 s to a well-formed request');
      else out.notes.push('malformed request left unanswered (the server waits for the rest of it)');
    } else if (strict)
      out.failures.push(
        `connection ${r.kind}${'error' in r && r.error ? ` (${r.error})` : ''} without a response to a well-formed request`,
      );
    // It may have been handled before the close.
    if (c.method.toUpperCase() === 'POST') {
      for (const k of COUNTED) add(out.mayHaveWritten, k, k === 'events' ? 1000 : 1);
    }
    return out;
  }
  const ctype = r.headers['content-type'] ?? '';
  const isJson = ctype.startsWith('application/json');
  const json = isJson ? parseJson(r.body.toString('utf8')) : undefined;
  const segs = path.split('/').filter(Boolean);
  const engineIo = segs[0] === 'socket.io';
  // uWebSockets.js reports the method lowercased (getMethod), so `get /` is served like `GET /`.
  const method = c.method.toUpperCase();
  const isStatic = (segs.length === 0 || segs[0] === 'assets') && (method === 'GET' || method === 'HEAD');
  const isMetrics = segs.length === 1 && segs[0] === 'metrics';
  // The fuzz node has no ALLOWED_ORIGINS: no answer may let a foreign page read it.
  const acao = r.headers['access-control-allow-origin'];
  if (acao !== undefined) out.failures.push(`Access-Control-Allow-Origin: ${acao} with no ALLOWED_ORIGINS configured`);
  // uWebSockets.js v20.51 refuses some requests itself, before Fluxo (or Engine.IO) sees them, with a
  // bare status and an HTML body: 400 (unparsable), 431 (headers too large), 505 (HTTP/1.0; the older
  // fork left those unanswered). Protocol-level refusals, whatever the path — not server errors.
  if (!ctype && TRANSPORT_REFUSALS.has(r.status)) out.notes.push(`refused by the transport (uWebSockets.js) with ${r.status}`);
  else if (r.status >= 500) out.failures.push(`HTTP ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
  else if (r.status === 204 || r.status === 304) {
    // No content, by definition (an OPTIONS answer, a preflight).
  } else if (engineIo && c.method !== 'HEAD') {
    // Engine.IO's own answers: 200 (a session), 400/403 with {code: <number>, message} (its protocol
    // errors), or one of ours (a refused handshake: 429 rate_limited).
    const b = parseJson(r.body.toString());
    if (r.status >= 400 && typeof (b as { code?: unknown })?.code !== 'number' && typedError(b, r.status) !== null)
      out.failures.push(`Engine.IO answered ${r.status} without an error body: ${r.body.toString().slice(0, 100)}`);
  } else if (isStatic && !isJson) {
    if (r.status === 404) out.notes.push(`static 404 answered as text/plain, not a typed error (${path.slice(0, 60)})`);
  } else if (isMetrics && r.status === 200) {
    // Prometheus text.
  } else if (c.method === 'HEAD') {
    // No body to read: the status must be one the catalog (or, under /socket.io/, Engine.IO) answers with.
    if (r.status >= 400 && !engineIo && !Object.values(ERRORS).some((e) => e.status === r.status))
      out.failures.push(`HEAD answered ${r.status}, a status no catalog code has`);
  } else if (!isJson) {
    if (strict || r.status < 400)
      out.failures.push(`HTTP ${r.status} answered with ${ctype || 'no content type'}: ${r.body.toString('utf8').slice(0, 120)}`);
    else out.notes.push(`malformed request refused by the transport with ${r.status} ${ctype || 'no content type'}`);
  } else if (r.status >= 400) {
    const why = typedError(json, r.status);
    if (why) out.failures.push(`HTTP ${r.status} not a typed error (${why}): ${r.body.toString('utf8').slice(0, 200)}`);
  } else if (json === undefined || typeof json !== 'object' || json === null) {
    out.failures.push(`HTTP ${r.status} with a body that is not a JSON object`);
  } else if (c.method === 'POST' && r.status >= 200 && r.status < 300) {
    // What an accepted write wrote, from what it answered.
    const data = (json as { data?: unknown }).data as Record<string, unknown> | Record<string, unknown>[] | undefined;
    const sent = body ? (parseJson(body.toString('utf8')) as Record<string, unknown> | undefined) : undefined;
    const published = path.startsWith('/api/publish') && data !== undefined;
    if (published) {
      // One event or a batch. Named by a requestId, each tenant's part claims a key, and a retry
      // may find some parts committed already: the answer says `replayed` only when all were, so
      // a write that is not replayed wrote at most its events.
      const list = Array.isArray(data) ? data : [data];
      const events = (Array.isArray(data) ? (sent?.events as { tenant?: string }[] | undefined) : [sent ?? {}]) ?? [];
      const named = typeof sent?.requestId === 'string';
      const tenants = new Set(events.map((e) => e?.tenant)).size;
      if ((json as { replayed?: unknown }).replayed !== true) {
        add(named ? out.mayHaveWritten : out.wrote, 'events', list.length);
        if (named) add(out.mayHaveWritten, 'idempotency_keys', tenants);
      }
      list.forEach((e, i) => {
        if (events[i]?.tenant === t.ids.spyTenant) out.spyEvents.push(Number((e as { id: number }).id));
      });
    } else if (Array.isArray(data)) {
      out.failures.push(`an array answered to ${path.slice(0, 60)}`);
    } else if (data && typeof data === 'object') {
      if ('stages' in data && 'transitions' in data) add(out.wrote, 'workflows');
      else if ('workflowId' in data && 'version' in data && 'stage' in data) {
        add(out.wrote, 'processes');
        add(out.wrote, 'events');
      } else if ('process' in data && 'event' in data) {
        if (!data.replayed) {
          add(out.wrote, 'events');
          if (typeof sent?.requestId === 'string') add(out.wrote, 'idempotency_keys');
        }
      } else if (data.revoked === true) add(out.wrote, 'revoked_tokens');
    }
  }
  return out;
}

// ─── Socket cases ───────────────────────────────────────────────────────────────────────────────

interface Encoded {
  packets: (string | Buffer)[];
}

function encodeFrame(f: Frame, v: Values): Encoded {
  if ('raw' in f) return { packets: [pieceText(f.raw, v)] };
  if ('mut' in f) {
    const [first, ...rest] = encodeFrame(f.mut, v).packets;
    let text = String(first);
    for (const op of f.ops) {
      const i = Math.floor(op.at * text.length);
      text = text.slice(0, i) + resolve(op.ins, v) + text.slice(i + op.del);
    }
    return { packets: [text, ...rest] };
  }
  if ('bin' in f && typeof f.bin === 'string') return { packets: [Buffer.from(f.bin, 'base64')] };
  const e = (f as Extract<Frame, { ev: unknown }>).ev;
  const att = e.type === 5 ? `${e.attachments}-` : '';
  const nsp = e.nsp && e.nsp !== '/' ? `${resolve(e.nsp, v)},` : '';
  const text = `4${e.type}${att}${nsp}${e.ackId ?? ''}${jsonText([e.name, ...e.args], v)}`;
  return { packets: [text, ...e.bin.map((b) => Buffer.from(b, 'base64'))] };
}

/** Statuses uWebSockets.js answers by itself, without a content type (see checkHttp). */
const TRANSPORT_REFUSALS = new Set([400, 431, 505]);

interface Expectation {
  ackId: string;
  event: unknown;
  requestId: unknown;
}

/** Replays what the server's Socket.IO decoder will make of the packets we send: which events must be acked. */
class Model {
  private readonly decoder = new Decoder();
  dead = false;
  readonly expected: Expectation[] = [];
  /**
   * Events sent before the client's own DISCONNECT (`41`): Socket.IO runs an event's middleware and
   * then emits it on the next tick only if the socket is still connected ("ignore packet received
   * after disconnection"), so one that arrives in the same batch as the `41` may go unanswered. An
   * ack that does come is still checked; none is required.
   */
  readonly optional: Expectation[] = [];
  /** Ack ids of EVENT packets without any data (`421`): answered `unknown_event` (see runSocket). */
  readonly noData: string[] = [];
  /** The client sent DISCONNECT for '/'. */
  private left = false;
  constructor() {
    this.decoder.on('decoded', (p: { type: number; nsp: string; id?: number; data?: unknown[] }) => {
      // After its own DISCONNECT (`41`) a client's events of that namespace have no socket to answer
      // them: Socket.IO drops them (the session stays open). A later CONNECT may or may not succeed,
      // so nothing is expected any more; acks that do come are still checked (typed).
      if (p.type === 1 && p.nsp === '/' && !this.left) {
        this.left = true;
        this.optional.push(...this.expected.splice(0));
      }
      if (this.left) return;
      if (p.type === 2 && p.id !== undefined && p.nsp === '/' && p.data === undefined) this.noData.push(String(p.id));
      else if (p.type === 2 && p.id !== undefined && p.nsp === '/') {
        const args = p.data ?? [];
        this.expected.push({ ackId: String(p.id), event: args[0], requestId: (args[1] as { requestId?: unknown } | undefined)?.requestId });
      }
    });
  }
  feed(packet: string | Buffer): void {
    if (this.dead) return;
    try {
      if (typeof packet === 'string') {
        if (packet.startsWith('4')) this.decoder.add(packet.slice(1));
      } else this.decoder.add(packet);
    } catch {
      // The server's decoder throws the same way and closes the connection.
      this.dead = true;
    }
  }
}

/** `3<id>[…]` or `6<n>-<id>[…]` (a binary ack) on namespace `/`: the id and the packet. */
function acksOf(session: RawSession): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of sioPackets(session)) {
    // An id past 2^53 comes back as JavaScript writes the number (`1e+23`): as the server parsed it.
    const m = /^(?:3|6\d+-)(\d[\d.e+]*)\[/.exec(p);
    if (m) out.set(m[1]!, p);
  }
  return out;
}

export async function runSocket(t: Target, c: SocketCase): Promise<Outcome> {
  const out = newOutcome();
  out.requests = 1;
  const tok = c.token ? await mintSpec(c.token, t.ids, t.publishKey) : '';
  const tok2 = c.token2 ? await mintSpec(c.token2, t.ids, t.publishKey) : '';
  const v = placeholderValues(t.ids, t.publishKey, tok, tok2);
  const headers: [string, string][] = c.headers.map(([k, p]) => [k, pieceText(p, v)]);
  const query = c.query ? pieceText(c.query, v) : undefined;
  const deadline = () => Date.now() + 10_000;
  const session = await openSession(c.transport, t.url, {
    headers,
    localAddress: `127.0.${c.from}.1`,
    ...(query !== undefined ? { query } : {}),
    deadline: deadline(),
  });
  const steps: string[] = [`${c.transport}${query ? `?${query.slice(0, 60)}` : ''}`];
  try {
    if (!session.open) {
      const how = session.closed ?? 'no open packet';
      steps.push(`refused: ${how.slice(0, 160)}`);
      if (/http 5\d\d/.test(how)) out.failures.push(`handshake answered ${how.slice(0, 200)}`);
      else if (/timeout/.test(how)) out.failures.push(`handshake not answered: ${how}`);
      return out;
    }
    const model = new Model();
    const send = async (packets: (string | Buffer)[]) => {
      for (const p of packets) model.feed(p);
      out.frames += packets.length;
      await session.send(packets);
    };
    if (c.connect) {
      const text = `4${pieceText(c.connect, v)}`;
      await send([text]);
      steps.push(`connect ${text.slice(0, 80)}`);
      if (c.waitConnect) await session.until((r) => sioPackets(r).some((p) => /^(0|4)/.test(p)), deadline());
    }
    // Over polling, several packets go in one POST (as python-socketio sends them); over WebSocket, one frame each.
    const encoded = c.frames.map((f) => encodeFrame(f, v).packets);
    const batches: (string | Buffer)[][] = [];
    if (c.transport === 'polling') {
      let i = 0;
      for (const g of c.groups) {
        batches.push(encoded.slice(i, i + g).flat());
        i += g;
      }
      for (; i < encoded.length; i++) batches.push(encoded[i]!);
    } else batches.push(...encoded);
    for (const b of batches) {
      if (b.length === 0) continue;
      steps.push(`send ${b.map((p) => (typeof p === 'string' ? p.slice(0, 100) : `<${p.length} bytes>`)).join(' ␞ ')}`);
      await send(b);
      if (session.closed !== null) break;
    }
    // Every event that asked for an ack gets one, or the connection is closed.
    const answered = () => {
      const acks = acksOf(session);
      return model.expected.every((e) => acks.has(e.ackId)) && model.noData.every((id) => acks.has(id));
    };
    await session.until(answered, deadline());
    const acks = acksOf(session);
    for (const id of model.noData) {
      // Socket.IO's parser accepts an EVENT with an ack id and no data (`421`); it reaches
      // handlers.ts's screen as [ack] and is answered `unknown_event`.
      if (!acks.has(id) && session.closed === null)
        out.failures.push(`no ack for an EVENT packet with an ack id and no data (id ${id}) within 10 s, connection still open`);
    }
    for (const e of [...model.expected, ...model.optional]) {
      const ack = acks.get(e.ackId);
      if (ack === undefined) {
        if (session.closed === null && !model.optional.includes(e))
          out.failures.push(`no ack for ${JSON.stringify(e.event)?.slice(0, 60)} (id ${e.ackId}) within 10 s, connection still open`);
        else if (e.event === 'process:transition') {
          add(out.mayHaveWritten, 'events');
          add(out.mayHaveWritten, 'idempotency_keys');
        }
        continue;
      }
      const payload = (parseJson(ack.slice(ack.indexOf('['))) as unknown[] | undefined)?.[0];
      if (payload && typeof payload === 'object' && 'data' in payload) {
        const data = (payload as { data: { replayed?: unknown; event?: unknown } }).data;
        if (e.event === 'process:transition' && data && typeof data === 'object' && 'event' in data && !data.replayed) {
          add(out.wrote, 'events');
          if (typeof e.requestId === 'string') add(out.wrote, 'idempotency_keys');
        }
      } else {
        const why = typedError(payload);
        if (why) out.failures.push(`ack ${e.ackId} to ${JSON.stringify(e.event)?.slice(0, 40)} not typed (${why}): ${ack.slice(0, 200)}`);
      }
    }
    // Every ack received (expected or not, e.g. from a mutated frame) is typed.
    for (const [id, ack] of acks) {
      if (model.expected.some((e) => e.ackId === id) || model.optional.some((e) => e.ackId === id)) continue;
      const payload = (parseJson(ack.slice(ack.indexOf('['))) as unknown[] | undefined)?.[0];
      if (!(payload && typeof payload === 'object' && 'data' in payload)) {
        const why = typedError(payload);
        if (why) out.failures.push(`ack ${id} not typed (${why}): ${ack.slice(0, 200)}`);
      } else if ((payload as { data?: { event?: unknown } }).data?.event) {
        // An unexpected accepted transition: count it.
        add(out.mayHaveWritten, 'events');
        add(out.mayHaveWritten, 'idempotency_keys');
      }
    }
    for (const p of sioPackets(session)) {
      // A refused CONNECT carries a catalog code (Socket.IO's own "Invalid namespace" carries none).
      if (p.startsWith('4')) {
        const body = parseJson(p.replace(/^4(\/[^,]*,)?/, '')) as { data?: unknown; message?: unknown } | undefined;
        if (body?.data !== undefined) {
          const why = typedError({ error: body.data });
          if (why) out.failures.push(`connect_error not typed (${why}): ${p.slice(0, 200)}`);
        }
      }
      // Nothing of the spy's tenant reaches a fuzzer's socket.
      if (
        p.startsWith('2') &&
        (p.includes(t.ids.spyProcess) ||
          p.includes(t.ids.spyWorkflow) ||
          p.includes('fuzz.barrier') ||
          p.includes(`"userId":"${t.ids.spyUser}"`))
      ) {
        out.failures.push(`a fuzzer socket received the spy tenant's data: ${p.slice(0, 200)}`);
      }
    }
    steps.push(
      `received ${sioPackets(session).length} packets; ${acks.size} acks; ${session.closed ? `closed: ${session.closed.slice(0, 80)}` : 'open'}`,
    );
    return out;
  } finally {
    out.summary = steps.join(' | ');
    await session.close();
  }
}

// ─── Batches and invariants ─────────────────────────────────────────────────────────────────────

export interface BatchReport {
  failures: string[];
  notes: string[];
  requests: number;
  frames: number;
  http: number;
  sockets: number;
  ms: number;
  /** The case that took longest, and how long. */
  slowest: { ms: number; summary: string } | null;
}

async function pool<T, R>(items: T[], width: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** What the spy may receive: its own presence, barrier events, events the fuzzer legitimately published to its tenant. */
function spyMayReceive(e: SpyEntry, t: Target, legit: Set<number>): boolean {
  if (e.event === 'hello') return true;
  if (e.event === 'presence') {
    const diff = e.args[0] as { joins?: { userId?: string }[]; leaves?: { userId?: string }[]; updates?: { userId?: string }[] };
    return [...(diff.joins ?? []), ...(diff.leaves ?? []), ...(diff.updates ?? [])].every((m) => m.userId === t.ids.spyUser);
  }
  if (e.event === 'event') {
    const ev = e.args[0] as { type?: string; id?: number };
    return ev.type === 'fuzz.barrier' || legit.has(Number(ev.id));
  }
  return false;
}

/**
 * Runs one batch of cases (`width` at a time) and checks every invariant. Never throws for a
 * violation: they are in `failures`, each naming the case.
 */
export async function runBatch(t: Target, cases: Case[], width = 3): Promise<BatchReport> {
  const started = Date.now();
  const failures: string[] = [];
  const notes: string[] = [];
  const before = await t.counts();
  const spyFrom = t.spy.received.length;
  const outcomes = await pool(cases, width, async (c, i) => {
    const t0 = Date.now();
    try {
      const o = c.kind === 'http' ? await runHttp(t, c) : await runSocket(t, c);
      o.ms = Date.now() - t0;
      return o;
    } catch (err) {
      const o = newOutcome();
      o.failures.push(`the engine failed on it: ${(err as Error).stack ?? err}`);
      o.summary = `case ${i}`;
      return o;
    }
  });
  outcomes.forEach((o, i) => {
    for (const f of o.failures) failures.push(`case ${i} (${o.summary}): ${f}`);
    for (const n of o.notes) notes.push(n);
  });

  // 1. Alive and answering.
  const health = await t.healthy(10_000);
  if (!health.ok) {
    const tail = t.log.lines.slice(-8).map((l) => l.text.slice(0, 300));
    failures.push(`the node is down after the batch: /health ${health.status}\n    last log lines:\n    ${tail.join('\n    ')}`);
    return summarize();
  }

  // 3. The spy: a barrier event, then nothing else may have arrived.
  const legit = new Set(outcomes.flatMap((o) => o.spyEvents));
  let barrierAt = -1;
  try {
    barrierAt = await t.barrier();
  } catch (err) {
    failures.push(`barrier: ${(err as Error).message}`);
  }
  if (barrierAt >= 0) {
    for (const e of t.spy.received.slice(spyFrom, barrierAt)) {
      if (!spyMayReceive(e, t, legit)) failures.push(`the spy received ${e.event} ${JSON.stringify(e.args).slice(0, 300)}`);
    }
  }
  if (t.spy.disconnects.length > 0) failures.push(`the spy was disconnected: ${t.spy.disconnects.join(', ')}`);

  // 4. Rows: exactly what accepted writes wrote (+ the barrier event), up to what unanswered ones may have.
  const after = await t.counts();
  if (before && after) {
    for (const k of COUNTED) {
      const wrote = outcomes.reduce((s, o) => s + (o.wrote[k] ?? 0), 0) + (k === 'events' ? 1 : 0);
      const may = outcomes.reduce((s, o) => s + (o.mayHaveWritten[k] ?? 0), 0);
      const delta = after[k] - before[k];
      if (delta < wrote || delta > wrote + may)
        failures.push(`${k}: ${delta} rows written; accepted requests account for ${wrote}${may ? ` (+ up to ${may} unanswered)` : ''}`);
    }
  }

  // 5. The log: nothing at error level while the batch ran.
  for (const l of t.log.problems(started)) failures.push(`logged: ${l.text.slice(0, 400)}`);
  return summarize();

  function summarize(): BatchReport {
    return {
      failures,
      notes,
      requests: outcomes.reduce((s, o) => s + o.requests, 0),
      frames: outcomes.reduce((s, o) => s + o.frames, 0),
      http: cases.filter((c) => c.kind === 'http').length,
      sockets: cases.filter((c) => c.kind === 'socket').length,
      ms: Date.now() - started,
      slowest: outcomes.reduce<BatchReport['slowest']>((m, o) => (m && m.ms >= o.ms ? m : { ms: o.ms, summary: o.summary }), null),
    };
  }
}

// ─── The property ───────────────────────────────────────────────────────────────────────────────

export interface FuzzStats {
  /** Property runs (batches), shrinking included. */
  batches: number;
  /** Cases: HTTP requests and socket sessions. */
  cases: number;
  http: number;
  sockets: number;
  /** Engine.IO packets sent in socket sessions. */
  frames: number;
  /** Notes (off but allowed), distinct, with how often. */
  notes: Map<string, number>;
  restarts: number;
}

export interface FuzzOptions {
  /** Stop starting new batches after this long (shrinking included). */
  timeLimitMs: number;
  seed?: number;
  /** A counterexample path to replay (with its seed). */
  path?: string;
  /** @default unbounded (until timeLimitMs) */
  numRuns?: number;
  /** Called after each batch. */
  onBatch?: (stats: FuzzStats, report: BatchReport) => void;
}

export interface FuzzResult {
  stats: FuzzStats;
  failed: boolean;
  seed: number;
  path: string | null;
  /** The smallest failing batch fast-check found. */
  counterexample: Case[] | null;
  error: string | null;
  numRuns: number;
  numShrinks: number;
  interrupted: boolean;
}

export async function fuzz(t: Target, opts: FuzzOptions): Promise<FuzzResult> {
  const stats: FuzzStats = { batches: 0, cases: 0, http: 0, sockets: 0, frames: 0, notes: new Map(), restarts: 0 };
  const property = fc.asyncProperty(batchArb, async (cases) => {
    if (!(await t.healthy(10_000)).ok) {
      await t.restart();
      stats.restarts++;
    }
    const report = await runBatch(t, cases);
    stats.batches++;
    stats.cases += cases.length;
    stats.http += report.http;
    stats.sockets += report.sockets;
    stats.frames += report.frames;
    for (const n of report.notes)
      stats.notes.set(n.replace(/\(.*\)$/, '').trim(), (stats.notes.get(n.replace(/\(.*\)$/, '').trim()) ?? 0) + 1);
    opts.onBatch?.(stats, report);
    if (report.failures.length > 0) throw new Error(report.failures.join('\n'));
  });
  const details = await fc.check(property, {
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.path !== undefined ? { path: opts.path } : {}),
    numRuns: opts.numRuns ?? 1_000_000,
    interruptAfterTimeLimit: opts.timeLimitMs,
    markInterruptAsFailure: false,
  });
  return {
    stats,
    failed: details.failed,
    seed: details.seed,
    path: details.counterexamplePath,
    counterexample: (details.counterexample?.[0] as Case[] | undefined) ?? null,
    error: details.errorInstance ? String((details.errorInstance as Error).message ?? details.errorInstance) : null,
    numRuns: details.numRuns,
    numShrinks: details.numShrinks,
    interrupted: details.interrupted,
  };
}
