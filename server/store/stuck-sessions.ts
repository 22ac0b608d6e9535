import { sql } from 'drizzle-orm';
import { AppError } from '../errors.js';
import type { StoreLogger } from './db.js';
import type { ReadRouter } from './read-router.js';

/**
 * Ends the sessions a frozen node left holding locks that Postgres itself never ends.
 * idle_in_transaction_session_timeout ends a transaction whose node froze between two statements.
 * But postgres.js sends each statement with parameters in two steps — Parse and Describe, then,
 * once the parameter types are back, Bind, Execute and Sync — and a node frozen between them
 * leaves its session "active" and reading from its client (wait event ClientRead), locks held.
 * Postgres 15 applies neither statement_timeout nor the idle timeout to a session reading from its
 * client (17 has transaction_timeout). A live client answers within a round trip, so any node ends
 * Fluxo sessions found in that state for longer than `ms`.
 *
 * Looks every `ms` / 3 (within 100 ms – 1 s); returns the function that stops it.
 */
export function endStuckSessions(router: ReadRouter, ms: number, log: StoreLogger): () => void {
  let running = false;
  let lookupFailing = false;
  const sweep = async () => {
    if (running) return;
    running = true;
    try {
      const ended = await router.query(sql`SELECT pid, pg_terminate_backend(pid) AS ended FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'fluxo' AND pid <> pg_backend_pid()
          AND state = 'active' AND wait_event_type = 'Client' AND wait_event = 'ClientRead'
          AND state_change < clock_timestamp() - make_interval(secs => ${ms / 1000})`);
      if (ended.length > 0) {
        log.warn({ pids: ended.map((r) => r.pid) }, 'ended database sessions stuck mid-statement for their client (a frozen node?)');
      }
      lookupFailing = false;
    } catch (err) {
      // Unreachable primary: /ready and the writes say so. Anything else (no permission to end
      // another node's session?) is worth a warning, once.
      if (!(err instanceof AppError) && !lookupFailing) {
        log.warn({ err: (err as Error).message }, 'could not look for stuck database sessions');
      }
      lookupFailing = true;
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void sweep(), Math.min(1000, Math.max(100, ms / 3))).unref();
  return () => clearInterval(timer);
}
