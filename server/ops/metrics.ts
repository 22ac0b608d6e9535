import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type Metrics = ReturnType<typeof createMetrics>;

/** One registry per node (tests build several nodes in one process). */
export function createMetrics(nodeId: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const counter = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers });
  const gauge = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name, help, labelNames, registers });
  const histogram = <L extends string = never>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []) =>
    new Histogram<L>({ name, help, buckets, labelNames, registers });
  return {
    registry,
    wsConnections: gauge('ws_connections_active', 'Live Socket.IO connections on this node'),
    eventsEmitted: counter('ws_events_emitted_total', 'Events emitted to rooms, by type', ['type']),
    // Refusals by a limit, one metric per transport, labelled with the same `limit` names (README, "Rate limits").
    httpRefusals: counter(
      'http_limit_refusals_total',
      'HTTP requests refused by a limit (429 or 413), by limit: a budget (http:read, http:write, process:transition, publish, auth, session) or a cap (sessions_per_ip, max_http_buffer_size: a long-polling POST)',
      ['limit'],
    ),
    wsRefusals: counter(
      'ws_limit_refusals_total',
      'Socket.IO refusals by a limit, by limit: a budget (handshake, events, process:transition, presence:update, subscribe, auth:refresh) or a cap (sockets_per_user, sockets_per_ip, events_flood: a socket disconnected, max_http_buffer_size: a WebSocket frame cut, max_backpressure: a WebSocket cut for not reading)',
      ['limit'],
    ),
    fanoutSeconds: histogram(
      'ws_event_fanout_seconds',
      'Time from commit to emit',
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    ),
    httpDuration: histogram(
      'http_request_duration_seconds',
      'HTTP request duration by route and status',
      [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      ['route', 'status'],
    ),
    partitionsAhead: gauge('db_event_partitions_ahead', 'Months after the current one that already have an event-log partition'),
    replicaUp: gauge(
      'db_replica_up',
      'Whether the last probe of each streaming replica (DATABASE_REPLICA_URLS, by index) answered: 1 yes, 0 unreachable or not yet measured',
      ['replica'],
    ),
    replicaLag: gauge(
      'db_replica_lag_seconds',
      'Replay lag of each streaming replica as last measured; no sample while unknown (see db_replica_up)',
      ['replica'],
    ),
    writeBatches: counter(
      'db_write_batches_total',
      'Group-commit transactions (rate(db_batched_writes_total) / rate(this) is the mean batch size)',
    ),
    batchedWrites: counter('db_batched_writes_total', 'Transitions and publish calls committed through group commit'),
    lateCommits: counter(
      'db_late_commit_events_total',
      'Events of writes answered store_unavailable that committed after all (their COMMIT was in flight at the deadline), sent then',
    ),
    dbDuration: histogram(
      'db_query_duration_seconds',
      'Store operation duration by operation',
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      ['op'],
    ),
  };
}
