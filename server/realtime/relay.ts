/**
 * The adapter message that carries the committed events handed to fanout in one turn of the event
 * loop to the other nodes: `[tenant, event][]`, in the order they were handed (realtime/fanout.ts;
 * on a Redis Cluster, one message per tenant on that tenant's channel: realtime/redis-adapter.ts).
 */
export const EVENTS_RELAY = 'fluxo:events';
