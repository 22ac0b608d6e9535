import { randomUUID } from 'node:crypto';
import type { RedisClient } from '../bus/connections.js';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import { type NodeBeat, type Survey, type SurveyAnswer, SurveyHandlers, type SurveyResult, surveyMetrics } from './survey.js';

/*
 * Why not the Socket.IO adapter's `serverSideEmitWithAck` or `fetchSockets`: they wait for the
 * number of servers Redis counts as subscribers (PUBSUB NUMSUB, or SHARDNUMSUB summed over the
 * shards for the sharded adapter). A frozen node stays subscribed: `serverSideEmitWithAck` then
 * fails after socket.io-adapter's fixed 5 s (ClusterAdapter, used by the sharded adapter) with
 * neither the answers it got nor the silent node's name; `fetchSockets` also ships every matching
 * socket's handshake and data across Redis. Here each node announces itself every TTL/4 (`beat`), so
 * every node knows the others by id; a question is answered by each from its own sockets, the
 * asker waits for the nodes it knows for at most `timeoutMs` and names the ones that stayed
 * silent. A node killed without a goodbye is forgotten TTL after its last beat; a drained node says
 * `bye`. Plain PUBLISH/SUBSCRIBE, so the same on one Redis and on a Redis Cluster (where classic
 * Pub/Sub reaches every shard).
 */

type Message =
  | { t: 'beat'; from: string; beat: NodeBeat; hello?: boolean }
  | { t: 'bye'; from: string }
  | { t: 'ask'; id: string; from: string; op: string; arg: unknown }
  | { t: 'answer'; id: string; from: string; ok: boolean; result?: unknown };

interface Pending {
  expected: Set<string>;
  answers: SurveyAnswer<unknown>[];
  failed: Set<string>;
  finish: () => void;
}

export interface RedisSurveyOptions {
  /** The `state` connection. */
  pub: RedisClient;
  /** The `state-sub` connection. */
  sub: RedisClient;
  prefix: string;
  self: NodeBeat;
  /** PRESENCE_TTL_MS: a node not heard from for this long is gone. */
  ttlMs: number;
  /** OPERATOR_TIMEOUT_MS. */
  timeoutMs: number;
  log: Logger;
  metrics: Metrics;
}

/** The survey across every node that shares this Redis (and REDIS_KEY_PREFIX). */
export function createRedisSurvey(opts: RedisSurveyOptions): Survey {
  const { pub, sub, self, log } = opts;
  const nodeId = self.nodeId;
  const handlers = new SurveyHandlers();
  const seen = new Map<string, { beat: NodeBeat; at: number }>();
  const pending = new Map<string, Pending>();
  const channel = `${opts.prefix}:operator`;
  const inbox = `${channel}:${nodeId}`;
  const beatEveryMs = Math.max(100, Math.floor(opts.ttlMs / 4));
  let beating: NodeJS.Timeout | undefined;
  let started = false;
  let stopped = false;
  const { missed } = surveyMetrics(opts.metrics, () => alive().length + 1);

  /** The other nodes heard from within the TTL. */
  function alive(): string[] {
    const now = Date.now();
    for (const [id, { at }] of seen) if (now - at > opts.ttlMs) seen.delete(id);
    return [...seen.keys()];
  }

  const publish = (to: string, msg: Message): Promise<unknown> => pub.publish(to, JSON.stringify(msg));

  const beat = (hello = false) =>
    publish(channel, { t: 'beat', from: nodeId, beat: self, ...(hello ? { hello } : {}) }).catch((err: unknown) =>
      log.debug({ err }, 'survey beat not published'),
    );

  async function answer(msg: Extract<Message, { t: 'ask' }>): Promise<void> {
    let reply: Message;
    try {
      reply = { t: 'answer', id: msg.id, from: nodeId, ok: true, result: await handlers.get(msg.op)(msg.arg) };
    } catch (err) {
      log.warn({ err, op: msg.op, from: msg.from }, 'survey question failed here');
      reply = { t: 'answer', id: msg.id, from: nodeId, ok: false };
    }
    await publish(`${channel}:${msg.from}`, reply).catch((err: unknown) => log.warn({ err }, 'survey answer not published'));
  }

  function onMessage(ch: string, raw: string): void {
    if (ch !== channel && ch !== inbox) return;
    let msg: Message;
    try {
      msg = JSON.parse(raw) as Message;
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.from !== 'string' || msg.from === nodeId) return;
    switch (msg.t) {
      case 'beat': {
        if (!isBeat(msg.beat, msg.from)) return;
        const known = seen.has(msg.from);
        seen.set(msg.from, { beat: msg.beat, at: Date.now() });
        // A node that just started asks: answer at once instead of at our next beat.
        if (msg.hello || !known) void beat();
        return;
      }
      case 'bye':
        seen.delete(msg.from);
        for (const p of pending.values()) if (p.expected.delete(msg.from)) settle(p);
        return;
      case 'ask':
        if (ch === channel && !stopped) void answer(msg);
        return;
      case 'answer': {
        const p = ch === inbox ? pending.get(msg.id) : undefined;
        if (!p) return;
        if (msg.ok) p.answers.push({ nodeId: msg.from, result: msg.result });
        else p.failed.add(msg.from);
        p.expected.delete(msg.from);
        settle(p);
        return;
      }
    }
  }

  function settle(p: Pending): void {
    if (p.expected.size === 0) p.finish();
  }

  async function ask<R>(op: string, arg: unknown): Promise<SurveyResult<R>> {
    const fn = handlers.get(op);
    const peers = alive();
    if (peers.length === 0) return { answers: [{ nodeId, result: (await fn(arg)) as R }], missing: [] };
    const id = randomUUID();
    let finish = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const p: Pending = { expected: new Set(peers), answers: [], failed: new Set(), finish };
    pending.set(id, p);
    const deadline = setTimeout(finish, opts.timeoutMs);
    try {
      // Asked first, answered here meanwhile.
      const asked = publish(channel, { t: 'ask', id, from: nodeId, op, arg }).then(
        () => true,
        (err: unknown) => {
          log.warn({ err, op }, 'survey question not published: the other nodes are listed as missing');
          return false;
        },
      );
      const mine = (await fn(arg)) as R;
      if (await asked) await done;
      const missing = [...p.expected, ...p.failed].sort();
      if (missing.length) missed.inc(missing.length);
      return { answers: [{ nodeId, result: mine }, ...(p.answers as SurveyAnswer<R>[])], missing };
    } finally {
      clearTimeout(deadline);
      pending.delete(id);
    }
  }

  return {
    self,
    handle: (op, fn) => handlers.set(op, fn),
    ask,
    nodes: () => [self, ...alive().map((id) => (seen.get(id) as { beat: NodeBeat }).beat)],
    start: async () => {
      if (started) return;
      started = true;
      sub.on('message', onMessage);
      await sub.subscribe(channel, inbox);
      await beat(true);
      beating = setInterval(() => void beat(), beatEveryMs).unref();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearInterval(beating);
      if (!started) return;
      await publish(channel, { t: 'bye', from: nodeId }).catch(() => {});
      sub.off('message', onMessage);
      await sub.unsubscribe(channel, inbox).catch(() => {});
      for (const p of pending.values()) p.finish();
    },
  };
}

function isBeat(beat: unknown, from: string): beat is NodeBeat {
  const b = beat as Partial<NodeBeat> | null;
  return typeof b === 'object' && b !== null && b.nodeId === from && typeof b.version === 'string' && typeof b.startedAt === 'string';
}
