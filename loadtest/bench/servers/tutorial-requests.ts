/**
 * The request rules of the tutorial-stack baseline (servers/tutorial-stack.ts), apart from the
 * server so that a unit test can load them without starting one.
 */

/** What a transition request asks for; without `expectedVersion` it is a blind write, as in Fluxo. */
export interface TransitionBody {
  to: string;
  expectedVersion?: number;
}

/** The process id of `POST /api/processes/<uuid>/transition`; anything else is null (a 404). */
export function transitionPath(url: string): string | null {
  // A malformed id would reach Postgres as a uuid cast error; here it is simply not a route.
  const m = /^\/api\/processes\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/transition(?:\?.*)?$/i.exec(url);
  return m ? m[1]!.toLowerCase() : null;
}

/** The body, or null when it is not a transition request (a 400). */
export function parseTransitionBody(text: string): TransitionBody | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof body !== 'object' || body === null) return null;
  const { to, expectedVersion } = body as Record<string, unknown>;
  if (typeof to !== 'string' || to.length === 0 || to.length > 64) return null;
  if (expectedVersion === undefined) return { to };
  if (!Number.isInteger(expectedVersion) || (expectedVersion as number) < 1) return null;
  return { to, expectedVersion: expectedVersion as number };
}

/** The Socket.IO room behind a tenant-relative name: prefixed with the tenant, so no name reaches another tenant's room. */
export function socketRoom(tenant: string, room: string): string {
  return room === 'tenant' ? tenant : `${tenant}:${room}`;
}

/** The Socket.IO room a client asks for (`tenant`, `workflow:<uuid>`, `process:<uuid>`); null for any other name. */
export function tenantRoom(tenant: string, room: string): string | null {
  if (room === 'tenant') return socketRoom(tenant, room);
  return /^(workflow|process):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(room)
    ? socketRoom(tenant, room.toLowerCase())
    : null;
}

/** The three rooms a transition is sent to, as Fluxo sends it: the tenant, its workflow, its process. */
export function transitionRooms(workflowId: string, processId: string): string[] {
  return ['tenant', `workflow:${workflowId}`, `process:${processId}`];
}
