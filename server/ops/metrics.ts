import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type Metrics = ReturnType<typeof createMetrics>;

/** One registry per node (tests build several nodes in one process). */
export function createMetrics(nodeId: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    wsConnections: new Gauge({ name: 'ws_connections_active', help: 'Live Socket.IO connections on this node', registers: [registry] }),
    eventsEmitted: new Counter({
      name: 'ws_events_emitted_total',
      help: 'Events emitted to rooms, by type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'ws_events_rate_limited_total',
      help: 'Requests refused by a rate limit, by event',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    limitRefusals: new Counter({
      name: 'limit_refusals_total',
      help: 'Requests, events and connections refused by a limit, by limit: a RATE_LIMITS budget (process:transition, http:read, handshake, auth, events, session, …) or a cap (sockets_per_user, sockets_per_ip, sessions_per_ip, max_http_buffer_size, events_flood)',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    fanoutSeconds: new Histogram({
      name: 'ws_event_fanout_seconds',
      help: 'Time from commit to emit',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by route and status',
      labelNames: ['route', 'status'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    partitionsAhead: new Gauge({
      name: 'db_event_partitions_ahead',
      help: 'Months after the current one that already have an event-log partition',
      registers: [registry],
    }),
    replicaLag: new Gauge({
      name: 'db_replica_lag_seconds',
      help: 'Replay lag of each streaming replica as last measured (-1: unreachable or not yet measured)',
      labelNames: ['replica'] as const,
      registers: [registry],
    }),
    writeBatches: new Counter({
      name: 'db_write_batches_total',
      help: 'Group-commit transactions (rate(db_batched_writes_total) / rate(this) is the mean batch size)',
      registers: [registry],
    }),
    batchedWrites: new Counter({
      name: 'db_batched_writes_total',
      help: 'Transitions and publish calls committed through group commit',
      registers: [registry],
    }),
    dbDuration: new Histogram({
      name: 'db_query_duration_seconds',
      help: 'Store operation duration by operation',
      labelNames: ['op'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}
