import type { ErrorBody, ErrorCode } from '../../shared/errors.js';
import type { FluxoEvent, Process, Role, Workflow } from '../../shared/protocol.js';
import { FluxoError } from '../../shared/sdk/index.js';

export interface Me {
  userId: string;
  tenant: string;
  role: Role;
  name: string | null;
  exp: number;
}
export interface DemoUser {
  id: string;
  name: string;
  role: Role;
}

/** GET /auth/session: who this browser's session cookie belongs to, without an error status when nobody. */
export type SessionStatus = (({ authenticated: true } & Me) | { authenticated: false; reason?: ErrorCode }) & {
  /** Present when the node offers demo sign-in (its /auth/dev-users answers 404 otherwise). */
  devLogin?: true;
};

/** Codes after which the session is over: the page goes back to its sign-in prompt. */
const SESSION_OVER: ReadonlySet<string> = new Set(['unauthorized', 'token_invalid', 'token_expired', 'token_revoked']);

export function sessionOver(err: unknown): err is FluxoError {
  return err instanceof FluxoError && SESSION_OVER.has(err.code);
}

/** The message a user reads for a failed request. */
export function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface Envelope<T> {
  data: T;
  nextCursor?: string | null;
  total?: number;
}

/** Same-origin JSON call with the session cookie; failures become FluxoError with the server's code. */
async function call<T>(method: string, path: string, body?: unknown): Promise<Envelope<T>> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    // fetch rejects only when no answer came: the node or the network is down.
    throw new FluxoError('offline', `Fluxo cannot be reached (${reason(err)}).`);
  }
  const text = await res.text();
  let json: Partial<Envelope<T>> & { error?: ErrorBody } = {};
  try {
    json = JSON.parse(text);
  } catch {}
  if (!res.ok || json.error)
    throw FluxoError.fromBody(json.error ?? { code: 'internal', message: `The server answered HTTP ${res.status}.` }, res.status);
  return json as Envelope<T>;
}

export const api = {
  sessionStatus: async () => (await call<SessionStatus>('GET', '/auth/session')).data,
  devUsers: async () => (await call<{ tenant: string; users: DemoUser[] }>('GET', '/auth/dev-users')).data,
  devLogin: async (userId: string, tenant: string) =>
    (await call<Me & { token: string }>('POST', '/auth/dev-login', { userId, tenant })).data,
  session: async (token: string) => (await call<Me>('POST', '/auth/session', { token })).data,
  logout: () => call<unknown>('POST', '/auth/logout', {}),
  workflows: async () => (await call<Workflow[]>('GET', '/api/workflows')).data,
  process: async (id: string) => (await call<Process>('GET', `/api/processes/${encodeURIComponent(id)}`)).data,
  /** A page of one column, newest first, with the column's total. */
  processes: async (workflowId: string, stage: string, limit: number, cursor?: string | null) => {
    const q = new URLSearchParams({ workflowId, stage, limit: String(limit), total: 'true' });
    if (cursor) q.set('cursor', cursor);
    const page = await call<Process[]>('GET', `/api/processes?${q}`);
    return { items: page.data, nextCursor: page.nextCursor ?? null, total: page.total ?? null };
  },
  /** The newest `limit` events of `room` with an id below `before`, in id order. */
  history: async (room: string, before: number, limit: number) => {
    const q = new URLSearchParams({ room, before: String(before), limit: String(limit) });
    return (await call<FluxoEvent[]>('GET', `/api/events?${q}`)).data;
  },
};
