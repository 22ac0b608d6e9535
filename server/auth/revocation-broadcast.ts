import type { RedisClient } from '../bus/connections.js';
import type { Logger } from '../ops/logger.js';

/**
 * How a revocation made on one node reaches the others at once (without it they learn it at their
 * next read of the store, within REVOCATION_POLL_MS plus replica lag). Their sockets are cut by the
 * logout route's `disconnectEverywhere`, which crosses nodes through the adapter; this makes a *new*
 * handshake with the token fail everywhere too.
 */
export interface RevocationBroadcast {
  /** Tells the other nodes; best effort (the store has it). Never rejects. */
  publish(key: string, untilMs: number): Promise<void>;
  /** Calls `onRevoked` for each revocation another node publishes, from when this resolves. */
  listen(onRevoked: (key: string, untilMs: number) => void): Promise<void>;
}

/** A single node: nobody else to tell. */
export const localRevocationBroadcast: RevocationBroadcast = {
  publish: async () => {},
  listen: async () => {},
};

interface RevokedMessage {
  key: string;
  /** When the entry can be forgotten (ms since epoch). */
  until: number;
  from: string;
}

/** One Redis Pub/Sub channel, `<prefix>:revoked`; a node ignores its own messages. */
export function redisRevocationBroadcast(opts: {
  /** The `state` connection. */
  pub: RedisClient;
  /** The `state-sub` connection. */
  sub: RedisClient;
  prefix: string;
  nodeId: string;
  log: Logger;
}): RevocationBroadcast {
  const { pub, sub, nodeId, log } = opts;
  const channel = `${opts.prefix}:revoked`;
  return {
    publish: async (key, until) => {
      const msg: RevokedMessage = { key, until, from: nodeId };
      await pub.publish(channel, JSON.stringify(msg)).catch((err: unknown) => log.warn({ err }, 'revocation broadcast failed'));
    },
    listen: async (onRevoked) => {
      sub.on('message', (ch: string, raw: string) => {
        if (ch !== channel) return;
        try {
          const msg = JSON.parse(raw) as RevokedMessage;
          if (msg.from !== nodeId && typeof msg.key === 'string' && typeof msg.until === 'number') onRevoked(msg.key, msg.until);
        } catch (err) {
          log.warn({ err }, 'bad revocation message');
        }
      });
      await sub.subscribe(channel);
    },
  };
}
