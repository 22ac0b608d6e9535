/**
 * fast-check arbitraries for the fuzzer: HTTP requests and Engine.IO/Socket.IO sessions, as plain
 * JSON data (a counterexample can be printed, stored in regressions.ts and replayed).
 *
 * Values that only exist at run time are written as placeholders, replaced in the final bytes:
 * `⟦fzP0⟧` a process of the fuzzer's tenant, `⟦spyP⟧` one of the spy's tenant, `⟦tok⟧` the case's
 * token (minted from its TokenSpec), `⟦pk⟧` the publish API key, … (see PLACEHOLDERS in engine.ts).
 * Long or deep text is written as `{ $rep, n }` / `{ $deep, n }` so a case stays small.
 */
import fc from 'fast-check';

// ─── Spec types ─────────────────────────────────────────────────────────────────────────────────

/**
 * A JSON value, plus markers expanded when it is written out: `{ $rep: s, n }` is `s` repeated n
 * times (a string), `{ $deep: n, kind, inner }` is `inner` wrapped in n arrays or objects.
 */
export type J = null | boolean | number | string | J[] | { [k: string]: J };

/** Text made of pieces: literal text, repetitions, raw bytes (base64), a J written as JSON. */
export type Piece = string | { $rep: string; n: number } | { $b64: string } | { $json: J };

export interface TokenSpec {
  /** Written in the header. */
  alg: string;
  /** `right`: the node's secret; `wrong`: another one; `none`: no signature; `pubkey`: HMAC keyed with a public-key text. */
  key: 'right' | 'wrong' | 'none' | 'dev' | 'pubkey';
  /** Tenant: `fz` (the fuzzer's), `spy` (the spy's, only ever with a key that is not right), or literal. */
  tid: string | null;
  sub: string | null;
  role: string | null;
  /** `future` (+1 h), `past` (-1 h), `missing`, or a literal claim value. */
  exp: 'future' | 'past' | 'missing' | J;
  nbf?: 'future' | 'past';
  iss?: J;
  aud?: J;
  /** `unique` (default), `absent` (then a unique `nonce` claim keeps the token unique), or a literal. */
  jti: 'unique' | 'absent' | J;
  name?: J;
  extraHeader?: { [k: string]: J };
  /** Done to the compact token after signing. */
  mangle: 'none' | 'truncate' | 'flip' | 'dot' | 'pad' | 'space' | 'lower';
}

export interface HttpCase {
  kind: 'http';
  /** Source address index (the fuzzer never comes from 127.0.0.1, the control address). */
  from: number;
  method: string;
  target: Piece[];
  headers: [string, Piece[]][];
  body: Piece[] | null;
  token: TokenSpec | null;
  token2: TokenSpec | null;
}

export interface EventFrame {
  ev: {
    /** 2 EVENT or 5 BINARY_EVENT. */
    type: 2 | 5;
    nsp: string | null;
    /** Digits as written; null: no ack requested. */
    ackId: string | null;
    /** The data array's first element: the event name (any JSON, usually a string). */
    name: J;
    args: J[];
    /** For type 5: the attachment count written in the header (need not match `bin`). */
    attachments: number;
    /** Binary frames sent after it (base64). */
    bin: string[];
  };
}
export interface RawFrame {
  /** An Engine.IO packet, type char included, as text. */
  raw: Piece[];
}
export interface BinFrame {
  /** A binary Engine.IO packet (base64). */
  bin: string;
}
export interface MutatedFrame {
  /** An event frame whose encoded text is then mutated. */
  mut: EventFrame;
  ops: { at: number; del: number; ins: string }[];
}
export type Frame = EventFrame | RawFrame | BinFrame | MutatedFrame;

export interface SocketCase {
  kind: 'socket';
  from: number;
  transport: 'websocket' | 'polling';
  /** Engine.IO query string; null: the normal one. */
  query: Piece[] | null;
  headers: [string, Piece[]][];
  token: TokenSpec | null;
  token2: TokenSpec | null;
  /** Text of the Socket.IO CONNECT packet (without the Engine.IO `4`); null: none sent. */
  connect: Piece[] | null;
  /** Wait for the CONNECT answer before sending frames. */
  waitConnect: boolean;
  frames: Frame[];
  /** Over polling: how many frames each POST carries (the rest go one by one). */
  groups: number[];
}

export type Case = HttpCase | SocketCase;

// ─── Building blocks ────────────────────────────────────────────────────────────────────────────

const ph = (name: string) => `⟦${name}⟧`;

/** Strings that have broken (or could break) something somewhere. */
export const NASTY_STRINGS = [
  '',
  ' ',
  'a\u0000b',
  '\u0000',
  '\ud800',
  'x\udfff',
  '\ud83d',
  '😀',
  '\u202e',
  'İ',
  'ǅ',
  '\uFEFF',
  '%00',
  '%',
  '%zz',
  '../../etc/passwd',
  '..\\..',
  "' OR 1=1 --",
  '"; DROP TABLE events; --',
  '$where',
  '{"$gt":""}',
  'null',
  'NaN',
  'Infinity',
  '-1',
  '1e309',
  '99999999999999999999999999999',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'tenant',
  `t:${ph('spyT')}:tenant`,
  `t:${ph('spyT')}:process:${ph('spyP')}`,
  ph('spyT'),
  ph('fzT'),
  ph('spyP'),
  ph('spyW'),
  ph('fzP0'),
  ph('fzW'),
  'user:fuzzer',
  `user:${ph('spyU')}`,
  '\r\nX-Injected: 1',
  '<script>alert(1)</script>',
  '\\u0000',
];

const nasty = fc.constantFrom(...NASTY_STRINGS);
const anyString = fc.oneof(
  { arbitrary: nasty, weight: 3 },
  { arbitrary: fc.string({ maxLength: 12 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 8 }), weight: 1 },
);

/** A big string: near and over MAX_PAYLOAD_BYTES (8192) and the engine's 4× cap. */
const bigString: fc.Arbitrary<J> = fc
  .record({ $rep: fc.constantFrom('x', 'é', '😀', '\\', '"', '\u0001'), n: fc.constantFrom(100, 1000, 2000, 4090, 8200, 20_000, 40_000) })
  .map((r) => r as unknown as J);

const deep: fc.Arbitrary<J> = fc
  .record({
    $deep: fc.constantFrom(31, 32, 33, 100, 1000, 10_000, 50_000),
    kind: fc.constantFrom('array', 'object'),
    inner: fc.constantFrom<J>(1, 'x', null),
  })
  .map((r) => r as unknown as J);

/** Ids as a client might send them: ours, the spy's, and broken ones. */
export const idArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(ph('fzP0'), ph('fzP1'), ph('fzP2'), ph('fzW')), weight: 4 },
  { arbitrary: fc.constantFrom(ph('spyP'), ph('spyW')), weight: 2 },
  { arbitrary: fc.uuid(), weight: 1 },
  { arbitrary: nasty, weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 10 }), weight: 1 },
  { arbitrary: fc.constant('a'.repeat(129)), weight: 1 },
);

/** A workflow id: the fuzzer's own mostly, the spy's sometimes, junk rarely. */
export const workflowRef: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constant(ph('fzW')), weight: 8 },
  { arbitrary: fc.constant(ph('spyW')), weight: 1 },
  { arbitrary: idArb, weight: 1 },
);
/** A process id, likewise. */
export const processRef: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom(ph('fzP0'), ph('fzP1'), ph('fzP2')), weight: 8 },
  { arbitrary: fc.constant(ph('spyP')), weight: 1 },
  { arbitrary: idArb, weight: 1 },
);

export const stageArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.constantFrom('todo', 'doing', 'done', 'toString', 'hasOwnProperty', 'valueOf'), weight: 5 },
  { arbitrary: fc.constantFrom('constructor', '__proto__', 'prototype', 'isPrototypeOf', '', 'x'.repeat(65)), weight: 2 },
  { arbitrary: anyString, weight: 1 },
);

export const roomArb: fc.Arbitrary<string> = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      'tenant',
      `workflow:${ph('fzW')}`,
      `process:${ph('fzP0')}`,
      `process:${ph('fzP1')}`,
      'user:fuzzer',
      `user:${ph('spyU')}`,
      `process:${ph('spyP')}`,
      `workflow:${ph('spyW')}`,
      `t:${ph('spyT')}:tenant`,
      `t:${ph('spyT')}:process:${ph('spyP')}`,
      `t:${ph('fzT')}:tenant`,
      `t:${ph('spyT')}:user:${ph('spyU')}`,
      `tenant:${ph('spyT')}`,
      'Tenant',
      'TENANT',
      ' tenant',
      'tenant ',
      'tenant\u0000',
      't\u0435nant',
      'tenant/../tenant',
      'process:',
      'process:../tenant',
      'rk:x',
      `rk:${ph('spyT')}`,
      '',
    ),
    weight: 6,
  },
  { arbitrary: anyString, weight: 1 },
  { arbitrary: fc.string({ maxLength: 200 }).map((s) => `process:${s}`), weight: 1 },
);

/** Any JSON, with nasty strings, prototype keys, placeholders for attachments, big and deep markers. */
export const jsonArb: fc.Arbitrary<J> = fc.letrec<{ value: J; leaf: J; node: J }>((tie) => ({
  leaf: fc.oneof(
    { arbitrary: anyString as fc.Arbitrary<J>, weight: 6 },
    { arbitrary: fc.integer() as fc.Arbitrary<J>, weight: 2 },
    { arbitrary: fc.constantFrom<J>(0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308), weight: 1 },
    { arbitrary: fc.boolean() as fc.Arbitrary<J>, weight: 1 },
    { arbitrary: fc.constant<J>(null), weight: 1 },
    { arbitrary: fc.integer({ min: -1, max: 3 }).map((num) => ({ _placeholder: true, num }) as J), weight: 1 },
    { arbitrary: bigString, weight: 1 },
    { arbitrary: deep, weight: 1 },
  ),
  node: fc.oneof(
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(
        fc.string({ maxLength: 8 }),
        fc.constantFrom('__proto__', 'constructor', 'prototype', 'room', 'state', 'to', 'data', 'toString'),
      ),
      tie('value'),
      { maxKeys: 4 },
    ),
  ),
  value: fc.oneof({ depthSize: 'small', maxDepth: 4 }, tie('leaf'), tie('node')),
})).value;

const objectArb: fc.Arbitrary<J> = fc.dictionary(fc.string({ maxLength: 8 }), jsonArb, { maxKeys: 4 }) as fc.Arbitrary<J>;

/** A record of fields each either left out, given a plausible value, or any JSON. */
function fields(spec: Record<string, fc.Arbitrary<J>>, extra = true): fc.Arbitrary<J> {
  const entries = Object.entries(spec).map(([k, arb]) =>
    fc
      .oneof({ arbitrary: arb, weight: 12 }, { arbitrary: jsonArb, weight: 1 }, { arbitrary: fc.constant(undefined), weight: 2 })
      .map((v) => [k, v] as const),
  );
  return fc
    .tuple(
      fc.tuple(...entries),
      extra
        ? fc.oneof(
            { arbitrary: fc.constant(null), weight: 8 },
            { arbitrary: fc.tuple(fc.constantFrom('extra', '__proto__', 'constructor'), jsonArb), weight: 1 },
          )
        : fc.constant(null),
    )
    .map(([pairs, more]) => {
      const o: { [k: string]: J } = {};
      for (const [k, v] of pairs) if (v !== undefined) o[k] = v as J;
      if (more) Object.defineProperty(o, more[0], { value: more[1], enumerable: true, writable: true, configurable: true });
      return o;
    });
}

/** Payloads each client event expects, nearly right: the handlers get past the schema often. */
export const eventPayload: Record<string, fc.Arbitrary<J>> = {
  subscribe: fields({ room: roomArb, after: fc.oneof(fc.nat(50), fc.constantFrom<J>(-1, 1.5, '3', 2 ** 60)) }),
  unsubscribe: fields({ room: roomArb }),
  'presence:update': fields({ room: roomArb, state: fc.oneof(objectArb, jsonArb) }),
  'process:transition': fields({
    processId: processRef,
    to: stageArb,
    expectedVersion: fc.oneof(fc.nat(6), fc.constantFrom<J>(-1, 1.5, '1', 2 ** 53)),
    requestId: fc.oneof(fc.constantFrom('r1', 'r2', 'r3'), anyString),
    data: objectArb,
  }),
  'auth:refresh': fields({ token: fc.constantFrom(ph('tok2'), ph('tok'), '', 'x.y.z') }),
};

const eventName: fc.Arbitrary<J> = fc.oneof(
  { arbitrary: fc.constantFrom('subscribe', 'unsubscribe', 'presence:update', 'process:transition', 'auth:refresh'), weight: 12 },
  {
    arbitrary: fc.constantFrom<J>(
      'connect',
      'disconnect',
      'disconnecting',
      'error',
      'newListener',
      'hello',
      'event',
      'constructor',
      '__proto__',
      'toString',
      'Subscribe',
      'subscribe\u0000',
      0,
      42,
      1.5,
      -1,
    ),
    weight: 2,
  },
  { arbitrary: anyString as fc.Arbitrary<J>, weight: 1 },
  { arbitrary: jsonArb, weight: 1 },
);

// ─── Tokens ─────────────────────────────────────────────────────────────────────────────────────

export const tokenArb: fc.Arbitrary<TokenSpec> = fc.oneof(
  // Mostly valid tokens of the fuzzer's tenant, so requests get past authentication.
  {
    weight: 8,
    arbitrary: fc.record({
      alg: fc.constant('HS256'),
      key: fc.constant<'right'>('right'),
      tid: fc.constant('fz'),
      sub: fc.constantFrom('fuzzer', 'fuzzer2'),
      role: fc.constantFrom('viewer', 'editor', 'admin', 'admin'),
      exp: fc.constant<'future'>('future'),
      jti: fc.constantFrom<'unique' | 'absent'>('unique', 'absent'),
      mangle: fc.constant<'none'>('none'),
    }),
  },
  // Anything: attacks on the verifier.
  {
    weight: 3,
    arbitrary: fc.record(
      {
        alg: fc.constantFrom('HS256', 'HS512', 'none', 'None', 'RS256', 'ES256', 'HS256 ', ''),
        key: fc.constantFrom<TokenSpec['key']>('right', 'wrong', 'none', 'dev', 'pubkey'),
        tid: fc.oneof(fc.constantFrom<string | null>('fz', 'spy', null, '', 'a:b', 'x'.repeat(65)), anyString),
        sub: fc.oneof(fc.constantFrom<string | null>('fuzzer', 'spy', null, '', 'a b'), anyString),
        role: fc.constantFrom<string | null>('viewer', 'editor', 'admin', 'owner', 'ADMIN', null, ''),
        exp: fc.oneof(fc.constantFrom<TokenSpec['exp']>('future', 'past', 'missing', '9999999999', 1e308, -1, 0, 2 ** 53), jsonArb),
        nbf: fc.constantFrom<'future' | 'past'>('future', 'past'),
        iss: jsonArb,
        aud: jsonArb,
        jti: fc.oneof(fc.constantFrom<TokenSpec['jti']>('unique', 'absent', '', 'x'.repeat(300), 5), jsonArb),
        name: jsonArb,
        extraHeader: fc.dictionary(fc.constantFrom('kid', 'jku', 'x5u', 'jwk', 'crit', 'b64', 'typ', 'cty', 'x5c'), jsonArb, {
          maxKeys: 3,
        }) as fc.Arbitrary<{
          [k: string]: J;
        }>,
        mangle: fc.constantFrom<TokenSpec['mangle']>('none', 'none', 'truncate', 'flip', 'dot', 'pad', 'space', 'lower'),
      },
      { requiredKeys: ['alg', 'key', 'tid', 'sub', 'role', 'exp', 'jti', 'mangle'] },
    ),
  },
);

// ─── HTTP ───────────────────────────────────────────────────────────────────────────────────────

/** Percent-encodes the UTF-8 bytes of `s` (a lone surrogate becomes U+FFFD, as any client would send it). */
const enc = (s: string): string =>
  s
    .split(/(⟦\w+⟧)/)
    .map((part, i) => (i % 2 === 1 ? part : encBytes(part)))
    .join('');
const encBytes = (s: string) =>
  [...Buffer.from(s, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
const pathId = fc.oneof(
  { arbitrary: idArb.map(enc), weight: 6 },
  {
    arbitrary: fc.constantFrom('a%00b', '%ff', '%2e%2e', '..', '%2F', 'a%2Fb', '%', '%E0%A4%A', '%uD800', '%ED%A0%80', 'x'.repeat(3000)),
    weight: 2,
  },
  { arbitrary: idArb, weight: 1 },
);

const cursorArb: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(
      fc.oneof(
        fc.constantFrom(
          'foo 2024',
          '+275760-09-13T00:00:00.000Z',
          '0000-01-01T00:00:00.000Z',
          '9999-12-31T23:59:59.999Z',
          '1970-01-01T00:00:00.000Z',
          '2024-02-30T00:00:00.000Z',
          '2026-01-01T00:00:00.000Z',
          '',
        ),
        anyString,
      ),
      fc.oneof(processRef, fc.constant('x')),
    )
    .map((pair) => Buffer.from(JSON.stringify(pair)).toString('base64url')),
  fc.base64String({ maxLength: 40 }),
  anyString.map(enc),
  jsonArb.map((j) => Buffer.from(JSON.stringify(j) ?? '').toString('base64url')),
);

function query(spec: Record<string, fc.Arbitrary<string>>): fc.Arbitrary<string> {
  const keys = Object.keys(spec);
  return fc
    .array(
      fc.oneof(
        { arbitrary: fc.constantFrom(...keys).chain((k) => spec[k]!.map((v) => `${k}=${v}`)), weight: 6 },
        {
          arbitrary: fc.tuple(fc.constantFrom('__proto__', 'constructor', 'x', '', 'limit[]'), anyString).map(([k, v]) => `${k}=${enc(v)}`),
          weight: 1,
        },
      ),
      { maxLength: 4 },
    )
    .map((parts) => (parts.length ? `?${parts.join('&')}` : ''));
}

const numberish = fc.oneof(
  { arbitrary: fc.nat(600).map(String), weight: 4 },
  { arbitrary: fc.constantFrom('-1', '0', '1.5', 'NaN', '1e9', '', 'x', '99999999999999999999', '0x10', '%205', '5%00'), weight: 2 },
  // A raw space ends the request target early: a malformed request line.
  { arbitrary: fc.constant(' 5'), weight: 1 },
);

const processesQuery = query({
  workflowId: idArb.map(enc),
  stage: stageArb.map(enc),
  assignee: idArb.map(enc),
  limit: numberish,
  cursor: cursorArb,
});
const eventsQuery = query({ room: roomArb.map(enc), after: numberish, limit: numberish });

/** A JSON body, written as text from a J (so prototype keys and markers survive). */
type BodyJ = { json: J } | { text: Piece[] };

const workflowBody = fields({
  name: fc.oneof(anyString, fc.constant('Fuzzed board')),
  stages: fc.oneof(
    fc.array(stageArb, { maxLength: 6 }),
    fc.constant<J>(['todo', 'done']),
    fc.constant<J>(Array.from({ length: 51 }, (_, i) => `s${i}`)),
  ),
  transitions: fc.oneof(
    fc.dictionary(stageArb, fc.array(stageArb, { maxLength: 3 }), { maxKeys: 3 }) as fc.Arbitrary<J>,
    fc.constant<J>({ todo: ['done'] }),
  ),
});
const processBody = fields({
  workflowId: workflowRef,
  title: fc.oneof(anyString, fc.constant('Fuzzed card')),
  stage: stageArb,
  assignee: fc.oneof(idArb, fc.constant<J>(null)),
  data: objectArb,
});
const transitionBody = fields({
  to: stageArb,
  expectedVersion: fc.oneof(fc.nat(6), fc.constantFrom<J>(-1, 1.5, '1')),
  requestId: fc.oneof(fc.constantFrom('r1', 'r2', 'r3'), anyString),
  data: objectArb,
});
const publishOne = fields({
  tenant: fc.constantFrom(ph('fzT'), ph('spyT'), 'other', '', 'a:b'),
  room: roomArb,
  type: fc.oneof(fc.constantFrom('custom', 'x.y', 'process.transitioned'), anyString),
  data: objectArb,
});
/** A small pool, so that retries (and reuses with other content, or other tenants) happen. */
const publishRequestId = fc.oneof(fc.constantFrom('p1', 'p2', 'p3'), anyString);
const publishBody = fc.oneof(
  publishOne,
  fields({
    tenant: fc.constantFrom(ph('fzT'), ph('spyT'), 'other'),
    room: roomArb,
    type: fc.constantFrom('custom', 'x.y'),
    data: objectArb,
    requestId: publishRequestId,
  }),
  fields({ events: fc.array(publishOne, { maxLength: 5 }) as fc.Arbitrary<J>, requestId: publishRequestId }),
);

interface Route {
  method: fc.Arbitrary<string>;
  path: fc.Arbitrary<string>;
  body: fc.Arbitrary<BodyJ | null>;
  auth: fc.Arbitrary<'bearer' | 'cookie' | 'none' | 'publish' | 'badpublish' | 'both'>;
}

const json = (arb: fc.Arbitrary<J>) => arb.map((j): BodyJ => ({ json: j }));
const noBody = fc.constant<BodyJ | null>(null);
const userAuth = fc.constantFrom<'bearer' | 'cookie' | 'none' | 'both'>('bearer', 'bearer', 'bearer', 'cookie', 'none', 'both');

const ROUTES: Route[] = [
  { method: fc.constant('GET'), path: fc.constant('/api/me'), body: noBody, auth: userAuth },
  { method: fc.constant('GET'), path: fc.constant('/api/workflows'), body: noBody, auth: userAuth },
  { method: fc.constant('POST'), path: fc.constant('/api/workflows'), body: json(workflowBody), auth: userAuth },
  { method: fc.constant('GET'), path: fc.oneof(workflowRef, pathId).map((id) => `/api/workflows/${id}`), body: noBody, auth: userAuth },
  { method: fc.constant('GET'), path: processesQuery.map((q) => `/api/processes${q}`), body: noBody, auth: userAuth },
  { method: fc.constant('POST'), path: fc.constant('/api/processes'), body: json(processBody), auth: userAuth },
  { method: fc.constant('GET'), path: fc.oneof(processRef, pathId).map((id) => `/api/processes/${id}`), body: noBody, auth: userAuth },
  {
    method: fc.constant('POST'),
    path: fc.oneof({ arbitrary: processRef, weight: 3 }, { arbitrary: pathId, weight: 1 }).map((id) => `/api/processes/${id}/transition`),
    body: json(transitionBody),
    auth: userAuth,
  },
  { method: fc.constant('GET'), path: eventsQuery.map((q) => `/api/events${q}`), body: noBody, auth: userAuth },
  {
    method: fc.constant('POST'),
    path: fc.constant('/api/publish'),
    body: json(publishBody),
    auth: fc.constantFrom('publish', 'publish', 'badpublish', 'bearer', 'none'),
  },
  {
    method: fc.constant('POST'),
    path: fc.constant('/auth/session'),
    body: json(fields({ token: fc.constantFrom(ph('tok'), ph('tok2'), '', 'a.b.c') })),
    auth: fc.constant('none'),
  },
  { method: fc.constant('POST'), path: fc.constant('/auth/logout'), body: noBody, auth: userAuth },
  {
    method: fc.constant('GET'),
    path: query({ tenant: anyString.map(enc) }).map((q) => `/auth/dev-users${q}`),
    body: noBody,
    auth: fc.constant('none'),
  },
  {
    method: fc.constant('POST'),
    path: fc.constant('/auth/dev-login'),
    body: json(
      fields({ userId: fc.constantFrom('ada', 'barbara', 'nobody', '__proto__'), tenant: fc.constantFrom(ph('fzT'), 'other', '', 'a:b') }),
    ),
    auth: fc.constant('none'),
  },
  {
    method: fc.constantFrom('GET', 'HEAD'),
    path: fc.constantFrom('/health', '/ready', '/metrics', '/'),
    body: noBody,
    auth: fc.constant('none'),
  },
  {
    method: fc.constant('GET'),
    path: fc
      .oneof(pathId, fc.constantFrom('..%2f..%2fpackage.json', '%2e%2e%2f%2e%2e%2fpackage.json', '..', 'index.html'))
      .map((f) => `/assets/${f}`),
    body: noBody,
    auth: fc.constant('none'),
  },
];

const anyRoute: Route = {
  method: fc.constantFrom(
    'GET',
    'POST',
    'PUT',
    'PATCH',
    'DELETE',
    'HEAD',
    'OPTIONS',
    'TRACE',
    'CONNECT',
    'PROPFIND',
    'get',
    'X'.repeat(40),
  ),
  path: fc.oneof(
    fc.constantFrom(
      '/api',
      '/api/',
      '/api//workflows',
      '/API/workflows',
      '/api/workflows/',
      '/api/processes/x/transition/extra',
      '/api/../health',
      '/%2e%2e/health',
      '/api/processes/%00',
      '//',
      '/socket.io/',
      '/socket.io/?EIO=4&transport=polling&sid=nope',
      '/socket.io/?EIO=3&transport=polling',
      '/socket.io/?EIO=4&transport=carrier-pigeon',
      '*',
      `/${'a/'.repeat(500)}`,
    ),
    fc.webPath(),
    fc.string({ maxLength: 30 }).map((s) => `/${enc(s)}`),
  ),
  body: fc.oneof(noBody, json(jsonArb)),
  auth: userAuth,
};

const contentType = fc.oneof(
  { arbitrary: fc.constant('application/json'), weight: 8 },
  {
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/jsonx',
      'application/json; charset=utf-16',
      'text/plain',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
      '',
    ),
    weight: 2,
  },
);

const extraHeader: fc.Arbitrary<[string, Piece[]]> = fc.oneof(
  fc.constantFrom<[string, Piece[]]>(
    ['Origin', ['https://evil.example.net']],
    ['Origin', ['null']],
    ['Origin', [`http://127.0.0.1`]],
    ['Sec-Fetch-Site', ['cross-site']],
    ['Sec-Fetch-Site', ['same-origin']],
    ['X-Forwarded-For', ['1.2.3.4']],
    ['X-Forwarded-For', ['127.0.0.1, ::1']],
    ['X-Forwarded-For', ['garbage, , 1.1.1.1']],
    ['X-Real-IP', ['10.0.0.1']],
    ['Connection', ['close']],
    ['Connection', ['keep-alive']],
    ['Connection', ['Upgrade']],
    ['Upgrade', ['websocket']],
    ['Expect', ['100-continue']],
    ['Accept', ['*/*']],
    ['Accept-Encoding', ['gzip, br']],
    ['Cookie', ['__proto__=x; constructor=y; fluxo_session=']],
    ['Cookie', ['fluxo_session="⟦tok⟧"']],
    ['Cookie', ['fluxo_session=%E0%A4%A']],
    ['Cookie', [{ $rep: 'a=b; ', n: 2000 }]],
    ['Authorization', ['Bearer']],
    ['Authorization', ['Bearer ', { $rep: 'A', n: 10_000 }]],
    ['Authorization', ['Basic Zm9vOmJhcg==']],
    ['Authorization', ['bearer ⟦tok⟧']],
    ['Authorization', ['Bearer ⟦tok⟧ ⟦tok⟧']],
    ['Host', ['evil.example.net']],
    ['X-Http-Method-Override', ['DELETE']],
    ['Content-Length', ['0']],
    ['Access-Control-Request-Method', ['POST']],
    ['Access-Control-Request-Headers', ['authorization, content-type']],
  ),
  fc
    .tuple(fc.constantFrom('X-Fuzz', 'Referer', 'User-Agent', 'If-None-Match', 'Range'), anyString)
    .map(([k, v]): [string, Piece[]] => [k, [v]]),
);

export const httpCaseArb: fc.Arbitrary<HttpCase> = fc
  .tuple(
    fc.oneof({ arbitrary: fc.constantFrom(...ROUTES), weight: 9 }, { arbitrary: fc.constant(anyRoute), weight: 1 }),
    fc.integer({ min: 2, max: 254 }),
    tokenArb,
    fc.oneof({ arbitrary: fc.constant(null), weight: 4 }, { arbitrary: tokenArb, weight: 1 }),
  )
  .chain(([route, from, tok, tok2]) =>
    fc
      .record({
        method: route.method,
        path: route.path,
        body: route.body,
        auth: route.auth,
        ctype: contentType,
        extra: fc.array(extraHeader, { maxLength: 3 }),
        rawBody: fc.oneof(
          { arbitrary: fc.constant(null), weight: 12 },
          {
            arbitrary: fc.constantFrom<Piece[]>(
              ['{'],
              ['{"a":'],
              [''],
              ['null'],
              ['[]'],
              ['"x"'],
              ['{"__proto__":{"polluted":1}}'],
              [{ $b64: '/w==' }],
              [{ $b64: '7aCA' }],
            ),
            weight: 1,
          },
          { arbitrary: deep.map((d): Piece[] => [{ $json: d }]), weight: 1 },
        ),
      })
      .map(({ method, path, body, auth, ctype, extra, rawBody }): HttpCase => {
        const headers: [string, Piece[]][] = [];
        if (auth === 'bearer' || auth === 'both') headers.push(['Authorization', ['Bearer ⟦tok⟧']]);
        if (auth === 'cookie' || auth === 'both') headers.push(['Cookie', ['fluxo_session=⟦tok⟧']]);
        if (auth === 'publish') headers.push(['Authorization', ['Bearer ⟦pk⟧']]);
        if (auth === 'badpublish') headers.push(['Authorization', ['Bearer ⟦pk⟧x']]);
        let bodyPieces: Piece[] | null = null;
        if (rawBody) bodyPieces = rawBody;
        else if (body && 'json' in body) bodyPieces = [{ $json: body.json }];
        else if (body && 'text' in body) bodyPieces = body.text;
        if (bodyPieces) headers.push(['Content-Type', [ctype]]);
        headers.push(...extra);
        return { kind: 'http', from, method, target: [path], headers, body: bodyPieces, token: tok, token2: tok2 };
      }),
  );

// ─── Socket.IO ──────────────────────────────────────────────────────────────────────────────────

const binAttachment = fc.oneof(
  fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b).toString('base64')),
  fc.constantFrom(Buffer.alloc(9000, 1).toString('base64'), Buffer.from('{"_placeholder":true}').toString('base64')),
);

const eventFrame: fc.Arbitrary<EventFrame> = eventName.chain((name) =>
  fc
    .record({
      binary: fc.boolean(),
      nsp: fc.oneof(
        { arbitrary: fc.constant<string | null>(null), weight: 12 },
        { arbitrary: fc.constantFrom('/', '/admin', '/x,y', '/⟦spyT⟧'), weight: 1 },
      ),
      ackId: fc.oneof(
        { arbitrary: fc.nat(1000).map(String), weight: 10 },
        { arbitrary: fc.constant<string | null>(null), weight: 2 },
        { arbitrary: fc.constantFrom('0', '007', '9007199254740993', '99999999999999999999999', '1e5'), weight: 1 },
      ),
      first:
        typeof name === 'string' && Object.hasOwn(eventPayload, name)
          ? fc.oneof({ arbitrary: eventPayload[name]!, weight: 8 }, { arbitrary: jsonArb, weight: 1 })
          : jsonArb,
      more: fc.oneof({ arbitrary: fc.constant<J[]>([]), weight: 8 }, { arbitrary: fc.array(jsonArb, { maxLength: 3 }), weight: 1 }),
      bin: fc.array(binAttachment, { maxLength: 3 }),
      attachments: fc.integer({ min: 0, max: 11 }),
    })
    .map(({ binary, nsp, ackId, first, more, bin, attachments }): EventFrame => {
      if (!binary) return { ev: { type: 2, nsp, ackId, name, args: [first, ...more], attachments: 0, bin: [] } };
      // A binary event: put placeholders for what is sent (most of the time in step with it).
      const placeholders: J[] = bin.map((_, num) => ({ _placeholder: true, num }));
      const arg: J =
        first !== null && typeof first === 'object' && !Array.isArray(first) ? { ...first, blob: placeholders[0] ?? null } : first;
      return {
        ev: { type: 5, nsp, ackId, name, args: [arg, ...more], attachments: attachments % 4 === 0 ? bin.length : attachments, bin },
      };
    }),
);

const engineRaw: fc.Arbitrary<RawFrame> = fc
  .oneof(
    fc.constantFrom<Piece[]>(['2'], ['3'], ['6'], ['5'], ['1'], ['0'], ['4'], ['7'], [''], ['2probe'], ['3probe'], ['b'], ['bAAAA']),
    fc.constantFrom<Piece[]>(
      ['40'],
      ['40{}'],
      ['40{"token":"⟦tok⟧"}'],
      ['41'],
      ['44{}'],
      ['43[]'],
      ['431[]'],
      ['42'],
      ['42[]'],
      ['42{}'],
      ['42"x"'],
      ['42[', { $rep: '[', n: 20_000 }],
      ['452-["subscribe",{"_placeholder":true,"num":0}]'],
      ['4999-[]'],
      ['4-1-[]'],
      ['411-[]'],
      ['42/admin,["x"]'],
      ['42/,1["subscribe",{"room":"tenant"}]'],
      ['4', { $rep: '2', n: 300 }],
    ),
    fc.tuple(fc.constantFrom('4', '42', '421', ''), anyString).map(([a, b]): Piece[] => [a + b]),
  )
  .map((raw) => ({ raw }));

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  { arbitrary: eventFrame, weight: 12 },
  { arbitrary: engineRaw, weight: 2 },
  { arbitrary: fc.uint8Array({ maxLength: 32 }).map((b): BinFrame => ({ bin: Buffer.from(b).toString('base64') })), weight: 1 },
  {
    arbitrary: fc
      .tuple(
        eventFrame,
        fc.array(
          fc.record({
            at: fc.double({ min: 0, max: 1, noNaN: true }),
            del: fc.nat(4),
            ins: fc.oneof(fc.constantFrom('', '[', ']', '"', '{', ',', '\u0000', '\\', '-', '/', '9'), anyString),
          }),
          { minLength: 1, maxLength: 3 },
        ),
      )
      .map(([mut, ops]): MutatedFrame => ({ mut, ops })),
    weight: 2,
  },
);

const connectArb: fc.Arbitrary<Piece[] | null> = fc.oneof(
  { arbitrary: fc.constant<Piece[]>(['0{"token":"⟦tok⟧"}']), weight: 12 },
  {
    arbitrary: fc.constantFrom<Piece[] | null>(
      null,
      ['0'],
      ['0{}'],
      ['0{"token":null}'],
      ['0{"token":["⟦tok⟧"]}'],
      ['0{"token":"⟦tok⟧","__proto__":{"admin":true}}'],
      ['0/admin,{"token":"⟦tok⟧"}'],
      ['0{"token":"⟦tok⟧"', '}'],
      ['0[]'],
      ['0"x"'],
      ['0{"token":"', { $rep: 'A', n: 9000 }, '"}'],
    ),
    weight: 2,
  },
  { arbitrary: jsonArb.map((j): Piece[] => ['0', { $json: j }]), weight: 1 },
);

const socketHeader: fc.Arbitrary<[string, Piece[]]> = fc.constantFrom<[string, Piece[]]>(
  ['Origin', ['https://evil.example.net']],
  ['Origin', ['null']],
  ['Cookie', ['fluxo_session=⟦tok⟧']],
  ['Authorization', ['Bearer ⟦tok⟧']],
  ['X-Forwarded-For', ['1.2.3.4']],
  ['Cookie', ['io=x; fluxo_session=']],
  ['User-Agent', ['python-socketio']],
);

export const socketCaseArb: fc.Arbitrary<SocketCase> = fc
  .record({
    from: fc.integer({ min: 2, max: 254 }),
    transport: fc.constantFrom<'websocket' | 'polling'>('websocket', 'polling'),
    query: fc.oneof(
      { arbitrary: fc.constant<Piece[] | null>(null), weight: 12 },
      {
        arbitrary: fc.constantFrom<Piece[] | null>(
          ['EIO=3&transport=polling'],
          ['EIO=4&transport=websocket&sid=nope'],
          ['EIO=4'],
          ['EIO=4&transport=polling&b64=1'],
          ['EIO=4&transport=polling&t=', { $rep: 'x', n: 5000 }],
          ['EIO=4&transport=polling&sid=%00'],
        ),
        weight: 1,
      },
    ),
    headers: fc.array(socketHeader, { maxLength: 2 }),
    token: tokenArb,
    token2: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: tokenArb, weight: 1 }),
    connect: connectArb,
    waitConnect: fc.oneof({ arbitrary: fc.constant(true), weight: 5 }, { arbitrary: fc.constant(false), weight: 1 }),
    frames: fc.array(frameArb, { minLength: 1, maxLength: 6 }),
    groups: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }),
  })
  .map((c): SocketCase => {
    // The Engine.IO query must name the transport the session is opened with.
    const query = c.query && c.transport === 'websocket' && String(c.query[0]).includes('transport=polling') ? null : c.query;
    return { kind: 'socket', ...c, query };
  });

export const caseArb: fc.Arbitrary<Case> = fc.oneof({ arbitrary: httpCaseArb, weight: 3 }, { arbitrary: socketCaseArb, weight: 2 });

/** One property run: a batch of cases, run a few at a time, then the invariants. */
export const batchArb: fc.Arbitrary<Case[]> = fc.array(caseArb, { minLength: 1, maxLength: 8 });
