import type { Sql } from 'postgres';

/**
 * The tutorial-stack baseline's tables, in a database of its own: a workflow (its allowed moves,
 * which the transition checks as Fluxo's does), processes with a version, and an append-only
 * event log with a bigserial id — the schema a Socket.IO + Postgres tutorial starts from. No
 * partitions, no per-room offsets, no idempotency keys.
 */
export async function createSchema(sql: Sql): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS workflows (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id text NOT NULL,
    name text NOT NULL,
    transitions jsonb NOT NULL
  )`;
  await sql`CREATE TABLE IF NOT EXISTS processes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id text NOT NULL,
    workflow_id uuid NOT NULL REFERENCES workflows(id),
    title text NOT NULL,
    stage text NOT NULL,
    version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
  )`;
  await sql`CREATE TABLE IF NOT EXISTS events (
    id bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    type text NOT NULL,
    process_id uuid NOT NULL,
    workflow_id uuid NOT NULL,
    from_stage text,
    to_stage text,
    version integer NOT NULL,
    actor text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
  )`;
  // A process's history is what such an app reads back.
  await sql`CREATE INDEX IF NOT EXISTS events_process ON events (process_id, id)`;
}

/** What the load generator needs to know of a process. */
export interface SeededProcess {
  id: string;
  stage: string;
  version: number;
}

/**
 * The fixtures' board (todo → doing → done, doing → todo) and `count` processes in `todo`, written
 * by the bench straight into the baseline's database: set-up is not what is measured.
 */
export async function seedBoard(sql: Sql, tenant: string, count: number): Promise<SeededProcess[]> {
  const transitions = { todo: ['doing'], doing: ['done', 'todo'] };
  const [wf] = await sql<{ id: string }[]>`INSERT INTO workflows (tenant_id, name, transitions)
    VALUES (${tenant}, 'Board', ${sql.json(transitions)}) RETURNING id`;
  return sql<SeededProcess[]>`INSERT INTO processes (tenant_id, workflow_id, title, stage)
    SELECT ${tenant}, ${wf!.id}, 'wp ' || g, 'todo' FROM generate_series(1, ${count}::int) AS g
    RETURNING id, stage, version`;
}

/** Of the acked event ids, how many the log holds; `rows`: every transition of the tenant in it. */
export async function ackedInLog(sql: Sql, tenant: string, acked: number[]): Promise<{ rows: number; acked: number }> {
  const [r] = await sql<{ rows: number; acked: number }[]>`SELECT count(*)::int AS rows,
    count(*) FILTER (WHERE id = ANY(${acked}::bigint[]))::int AS acked
    FROM events WHERE tenant_id = ${tenant} AND type = 'process.transitioned'`;
  return { rows: Number(r?.rows), acked: Number(r?.acked) };
}
