import { randomUUID } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import type { Logger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { RedisBus } from './bus.js';

/**
 * Asks every node of the cluster a question and gathers the answers: the transport of the
 * operator API (Centrifugo calls the same thing a "survey").
 *
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

/** What a node says about itself in each beat. */
export interface NodeBeat {
  nodeId: string;
  version: string;
  startedAt: string;
}

export interface SurveyAnswer<R> {
  nodeId: string;
  result: R;
}

export interface SurveyResult<R> {
  /** This node's answer first, then the others' in arrival order. */
  answers: SurveyAnswer<R>[];
  /** Nodes believed alive that did not answer in time (or failed to), sorted. */
  missing: string[];
}

/** Answers one kind of question from this node's own state. Arguments come from peers running Fluxo: check what they need. */
export type SurveyHandler = (arg: unknown) => Promise<unknown> | unknown;

export interface Survey {
  /** This node, as it announces itself. */
  readonly self: NodeBeat;
  handle(op: string, fn: SurveyHandler): void;
  /** Asks this node and every node it knows; resolves within `timeoutMs` (never rejects for a silent peer). */
  ask<R>(op: string, arg: unknown): Promise<SurveyResult<R>>;
  /** The nodes heard from within the TTL, this one included, with what they last said about themselves. */
  nodes(): NodeBeat[];
  start(): Promise<void>;
  /** Says `bye` (the others forget this node at once) and stops listening. */
  stop(): Promise<void>;
}

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

export interface SurveyOptions {
  /** Null: a single node without Redis, which answers alone. */
  bus: RedisBus | null;
  self: NodeBeat;
  /** PRESENCE_TTL_MS: a node not heard from for this long is gone. */
  ttlMs: number;
  /** OPERATOR_TIMEOUT_MS. */
  timeoutMs: number;
  log: Logger;
  metrics: Metrics;
}

export function createSurvey(opts: SurveyOptions): Survey {
  const { bus, self, log } = opts;
  const nodeId = self.nodeId;
  const handlers = new Map<string, SurveyHandler>();
  const seen = new Map<string, { beat: NodeBeat; at: number }>();
  const pending = new Map<string, Pending>();
  const channel = `${bus?.prefix ?? 'fluxo'}:operator`;
  const inbox = `${channel}:${nodeId}`;
  const beatEveryMs = Math.max(100, Math.floor(opts.ttlMs / 4));
  let beating: NodeJS.Timeout | undefined;
  let stopped = false;

  const missed = new Counter({
    name: 'cluster_survey_missing_total',
    help: 'Nodes that did not answer an operator API question within OPERATOR_TIMEOUT_MS',
    registers: [opts.metrics.registry],
  });
  new Gauge({
    name: 'cluster_nodes_seen',
    help: 'Nodes this node heard from within PRESENCE_TTL_MS, itself included (the operator API node list)',
    registers: [opts.metrics.registry],
    collect() {
      this.set(alive().length);
    },
  });

  function alive(): string[] {
    const now = Date.now();
    for (const [id, { at }] of seen) if (now - at > opts.ttlMs) seen.delete(id);
    return [...seen.keys()];
  }

  const publish = (to: string, msg: Message): Promise<unknown> =>
    bus ? bus.client('state').publish(to, JSON.stringify(msg)) : Promise.resolve();

  const beat = (hello = false) =>
    publish(channel, { t: 'beat', from: nodeId, beat: self, ...(hello ? { hello } : {}) }).catch((err: unknown) =>
      log.debug({ err }, 'survey beat not published'),
    );

  async function answer(msg: Extract<Message, { t: 'ask' }>): Promise<void> {
    const fn = handlers.get(msg.op);
    let reply: Message;
    try {
      if (!fn) throw new Error(`unknown survey op ${msg.op}`);
      reply = { t: 'answer', id: msg.id, from: nodeId, ok: true, result: await fn(msg.arg) };
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
    if (!fn) throw new Error(`unknown survey op ${op}`);
    const peers = alive();
    if (!bus || peers.length === 0) return { answers: [{ nodeId, result: (await fn(arg)) as R }], missing: [] };
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
    handle: (op, fn) => {
      handlers.set(op, fn);
    },
    ask,
    nodes: () => [self, ...alive().map((id) => (seen.get(id) as { beat: NodeBeat }).beat)],
    start: async () => {
      if (!bus) return;
      const sub = bus.client('state-sub');
      sub.on('message', onMessage);
      await sub.subscribe(channel, inbox);
      await beat(true);
      beating = setInterval(() => void beat(), beatEveryMs).unref();
    },
    stop: async () => {
      if (!bus || stopped) return;
      stopped = true;
      clearInterval(beating);
      await publish(channel, { t: 'bye', from: nodeId }).catch(() => {});
      const sub = bus.client('state-sub');
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
