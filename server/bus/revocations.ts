import type { RevocationStore, Revocations } from '../auth/revocations.js';
import type { Logger } from '../ops/logger.js';
import type { RedisBus } from './bus.js';

interface RevokedMessage {
  key: string;
  /** When the entry can be forgotten (ms since epoch). */
  until: number;
  from: string;
}

/**
 * Revocations reach every node at once: the durable write goes to the store as before, then the
 * key is published on Redis and every other node calls `markRevoked`. (Their sockets are cut by
 * the logout route's `disconnectEverywhere`, which crosses nodes through the adapter; this makes a
 * *new* handshake with the token fail everywhere without waiting for the next read of the store.)
 *
 * Returns the store to give `Revocations` (it publishes after each durable write) and `listen`,
 * to call once the `Revocations` exists.
 */
export function broadcastRevocations(bus: RedisBus, store: RevocationStore, nodeId: string, log: Logger) {
  const channel = `${bus.prefix}:revoked`;
  const publishing: RevocationStore = {
    revokedSince: (since) => store.revokedSince(since),
    revokeToken: async (key, expiresAt) => {
      await store.revokeToken(key, expiresAt);
      const msg: RevokedMessage = { key, until: expiresAt.getTime(), from: nodeId };
      // Best effort: the store has it, so a node that misses the message still refuses the token
      // after its next read of the store (within REVOCATION_POLL_MS plus replica lag).
      await bus
        .client('state')
        .publish(channel, JSON.stringify(msg))
        .catch((err: unknown) => log.warn({ err }, 'revocation broadcast failed'));
    },
  };

  const listen = async (revocations: Revocations) => {
    const sub = bus.client('state-sub');
    sub.on('message', (ch: string, raw: string) => {
      if (ch !== channel) return;
      try {
        const msg = JSON.parse(raw) as RevokedMessage;
        if (msg.from !== nodeId && typeof msg.key === 'string' && typeof msg.until === 'number') {
          revocations.markRevoked(msg.key, msg.until);
        }
      } catch (err) {
        log.warn({ err }, 'bad revocation message');
      }
    });
    await sub.subscribe(channel);
  };

  return { store: publishing, listen };
}
