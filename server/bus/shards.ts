import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import type { Logger } from '../ops/logger.js';

/**
 * The sharded bus on a Redis Cluster, watched end to end, one master at a time.
 *
 * A master that crashes is seen only by the connections to it: the Cluster clients stay `ready`
 * and emit no `close` (ioredis#775, closed as wontfix), ioredis makes a new subscriber for the
 * shard and sends SSUBSCRIBE again once the master is back — and tells no one. Whatever was
 * published on that shard in between reached no node (Pub/Sub keeps nothing), so the events of a
 * third of the rooms are gone for every node's sockets, and without this the bus saw no outage and
 * no client was told to resync.
 *
 * A shard is **lost** when a connection of the publishing or subscribing client ends (`-node`):
 * messages may be gone, the bus has an outage. It is **silent** while a probe is not back: one
 * channel per master (one of the slots it serves), where every tick a fresh nonce is SPUBLISHed
 * through adapter-pub and must come back on adapter-sub before the next tick. A master frozen
 * (SIGSTOP) keeps its connections: what was published is delivered late, not lost — silent, not
 * lost (like a silent single Redis, bus.ts). Either way the shard is whole again only when a probe
 * published after that comes back: ioredis re-subscribes all of a shard's channels at once, so from
 * then on every room's channel there delivers again, and telling clients to resync is safe.
 */
export interface ShardWatch {
  /** Masters (host:port) that are not known to deliver now: lost or silent, or not probed yet. */
  broken(): string[];
  close(): void;
}

export interface ShardWatchOptions {
  pub: Cluster;
  sub: Cluster;
  prefix: string;
  everyMs: number;
  log: Logger;
  /** A connection to a master ended: what it carried may be lost. */
  onLost(): void;
  /** Every master delivers again (a probe sent after the last loss came back from each). */
  onWhole(): void;
}

interface Probe {
  channel: string;
  slot: number;
  /** The nonce in flight and when it was sent. */
  pending?: { nonce: string; at: number };
  /** Whole once a probe sent after this came back. */
  brokenSince?: number;
  /** Its first probe is not back yet (nothing to announce when it is). */
  fresh: boolean;
}

/** Probe channels tried per master before giving up until the next tick (each is a KEYSLOT). */
const CHANNEL_TRIES = 64;

export function watchShards(o: ShardWatchOptions): ShardWatch {
  const probes = new Map<string, Probe>();
  let nextCandidate = 0;
  let closed = false;
  let searching = false;

  const masters = (): string[] => [...new Set(o.pub.slots.map((owners) => owners[0]).filter((k): k is string => k !== undefined))];
  const isBroken = (key: string): boolean => {
    const p = probes.get(key);
    return !p || p.brokenSince !== undefined;
  };
  const broken = () => masters().filter(isBroken);

  /** From now on, `key` (or every master, when unknown) is whole only once a probe sent after now is back. */
  const mark = (key: string | undefined, why: string) => {
    const now = Date.now();
    const hit = key !== undefined && probes.has(key) ? [key] : [...probes.keys()];
    for (const k of hit) {
      const p = probes.get(k)!;
      if (p.brokenSince === undefined) o.log.warn({ master: k, why }, 'redis cluster shard not delivering');
      p.brokenSince = now;
    }
  };

  // Buffers, as the adapter listens: an `smessage` listener would make ioredis decode every adapter message too.
  const onMessage = (rawChannel: Buffer, message: Buffer) => {
    const channel = rawChannel.toString();
    for (const [key, p] of probes) {
      if (p.channel !== channel || p.pending?.nonce !== message.toString()) continue;
      const sentAt = p.pending.at;
      p.pending = undefined;
      if (p.brokenSince === undefined || sentAt <= p.brokenSince) return;
      p.brokenSince = undefined;
      if (!p.fresh) o.log.info({ master: key }, 'redis cluster shard delivers again');
      p.fresh = false;
      if (broken().length === 0) o.onWhole();
      return;
    }
  };
  o.sub.on('smessageBuffer', onMessage);
  // A master's connection ended, from either client: the pool's (publishes) or its shard subscriber.
  const lost = (redis: { options?: { host?: string; port?: number } } | undefined, nodeKey?: string) => {
    if (closed) return;
    const host = redis?.options?.host;
    mark(nodeKey ?? (host ? `${host}:${redis?.options?.port}` : undefined), 'connection lost');
    o.onLost();
  };
  o.pub.on('-node', lost);
  o.sub.on('-node', lost);

  /** A probe channel for each master that has none (a new master, or a slot that moved). */
  const findChannels = async () => {
    const owner = (slot: number) => o.pub.slots[slot]?.[0];
    for (const [key, p] of probes) if (owner(p.slot) !== key) probes.delete(key);
    const missing = new Set(masters().filter((k) => !probes.has(k)));
    for (let i = 0; missing.size > 0 && i < CHANNEL_TRIES * missing.size; i++) {
      const channel = `${o.prefix}:bus-probe:${nextCandidate++}`;
      const slot = Number(await o.pub.cluster('KEYSLOT', channel));
      const key = owner(slot);
      if (key === undefined || !missing.has(key)) continue;
      missing.delete(key);
      // Not whole until its first probe is back.
      probes.set(key, { channel, slot, brokenSince: Date.now(), fresh: true });
      await o.sub.ssubscribe(channel).catch((err: unknown) => {
        probes.delete(key);
        throw err;
      });
    }
  };

  const tick = () => {
    if (closed) return;
    const now = Date.now();
    for (const [key, p] of probes) {
      if (p.pending && p.brokenSince === undefined) {
        o.log.warn({ master: key, why: 'probe not back' }, 'redis cluster shard not delivering');
        p.brokenSince = p.pending.at;
      }
      const nonce = randomUUID();
      p.pending = { nonce, at: now };
      o.pub.spublish(p.channel, nonce).catch(() => {});
    }
    if (!searching && masters().some((k) => !probes.has(k))) {
      searching = true;
      findChannels()
        .catch((err: Error) => o.log.debug({ err: err.message }, 'redis cluster probe channels not found yet'))
        .finally(() => {
          searching = false;
        });
    }
  };
  const timer = setInterval(tick, o.everyMs).unref();
  tick();

  return {
    broken,
    close: () => {
      closed = true;
      clearInterval(timer);
      o.pub.off('-node', lost);
      o.sub.off('-node', lost);
      o.sub.off('smessageBuffer', onMessage);
    },
  };
}
