-- Fluxo initial schema. Runs unchanged on Postgres 15 and PGlite (Postgres 18).
-- Applied in one transaction by server/store/migrator.ts, recorded in fluxo_migrations.

CREATE TABLE workflows (
  tenant_id   text        NOT NULL,
  id          text        NOT NULL,
  name        text        NOT NULL,
  stages      jsonb       NOT NULL,
  transitions jsonb       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX workflows_tenant_created ON workflows (tenant_id, created_at, id);

CREATE TABLE processes (
  tenant_id   text        NOT NULL,
  id          text        NOT NULL,
  workflow_id text        NOT NULL,
  title       text        NOT NULL,
  stage       text        NOT NULL,
  assignee    text,
  data        jsonb       NOT NULL DEFAULT '{}'::jsonb,
  version     integer     NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, workflow_id) REFERENCES workflows (tenant_id, id)
);
-- Keyset pagination: newest first by (created_at, id) within each filter.
CREATE INDEX processes_tenant_created ON processes (tenant_id, created_at, id);
CREATE INDEX processes_tenant_workflow_stage_created ON processes (tenant_id, workflow_id, stage, created_at, id);
CREATE INDEX processes_tenant_stage_created ON processes (tenant_id, stage, created_at, id);
CREATE INDEX processes_tenant_assignee_created ON processes (tenant_id, assignee, created_at, id);

-- One row per tenant. Event ids are taken with UPDATE … RETURNING on this row inside the writing
-- transaction, so the ids of a tenant commit (and become visible) in order.
CREATE TABLE tenant_cursors (
  tenant_id     text   PRIMARY KEY,
  last_event_id bigint NOT NULL
);

CREATE TABLE events (
  tenant_id   text        NOT NULL,
  id          bigint      NOT NULL,
  occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  type        text        NOT NULL,
  process_id  text,
  workflow_id text,
  rooms       text[]      NOT NULL,
  from_stage  text,
  to_stage    text,
  version     integer,
  actor       text        NOT NULL,
  data        jsonb       NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (tenant_id, id, occurred_at)
) PARTITION BY RANGE (occurred_at);
-- "events of the tenant after id" uses the primary key; process and workflow rooms use these.
CREATE INDEX events_tenant_process_id ON events (tenant_id, process_id, id);
CREATE INDEX events_tenant_workflow_id ON events (tenant_id, workflow_id, id);
-- Rows outside every monthly partition land here; ensurePartitions moves them out when it
-- creates the month they belong to. Monthly partitions (events_YYYY_MM) are made by the app.
CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE TABLE idempotency_keys (
  tenant_id  text        NOT NULL,
  request_id text        NOT NULL,
  result     jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, request_id)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE revoked_tokens (
  key        text        PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);
