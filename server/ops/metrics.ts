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
    // Refusals by a limit, one metric per transport, labelled with the same `limit` names (README, "Rate limits").
    httpRefusals: new Counter({
      name: 'http_limit_refusals_total',
      help: 'HTTP requests refused by a limit (429 or 413), by limit: a budget (http:read, http:write, process:transition, publish, auth, session) or a cap (sessions_per_ip, max_http_buffer_size: a long-polling POST)',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    wsRefusals: new Counter({
      name: 'ws_limit_refusals_total',
      help: 'Socket.IO refusals by a limit, by limit: a budget (handshake, events, process:transition, presence:update, subscribe, auth:refresh) or a cap (sockets_per_user, sockets_per_ip, events_flood: a socket disconnected, max_http_buffer_size: a WebSocket frame cut)',
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
    replicaUp: new Gauge({
      name: 'db_replica_up',
      help: 'Whether the last probe of each streaming replica (DATABASE_REPLICA_URLS, by index) answered: 1 yes, 0 unreachable or not yet measured',
      labelNames: ['replica'] as const,
      registers: [registry],
    }),
    replicaLag: new Gauge({
      name: 'db_replica_lag_seconds',
      help: 'Replay lag of each streaming replica as last measured; no sample while unknown (see db_replica_up)',
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
