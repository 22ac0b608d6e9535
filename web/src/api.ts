import type { ErrorBody } from '../../shared/errors.js';
import type { Process, Role, Workflow } from '../../shared/protocol.js';
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

/** Same-origin JSON call with the session cookie; failures become FluxoError with the server's code. */
async function call<T>(method: string, path: string, body?: unknown): Promise<{ data: T; nextCursor?: string | null }> {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: { data?: T; nextCursor?: string | null; error?: ErrorBody } = {};
  try {
    json = JSON.parse(text);
  } catch {}
  if (!res.ok || json.error) throw FluxoError.fromBody(json.error ?? { code: 'internal', message: `HTTP ${res.status}` });
  return json as { data: T; nextCursor?: string | null };
}

export const api = {
  me: async () => (await call<Me>('GET', '/api/me')).data,
  devUsers: async () => (await call<{ tenant: string; users: DemoUser[] }>('GET', '/auth/dev-users')).data,
  devLogin: async (userId: string, tenant: string) =>
    (await call<Me & { token: string }>('POST', '/auth/dev-login', { userId, tenant })).data,
  session: async (token: string) => (await call<Me>('POST', '/auth/session', { token })).data,
  logout: () => call<unknown>('POST', '/auth/logout', {}),
  workflows: async () => (await call<Workflow[]>('GET', '/api/workflows')).data,
  process: async (id: string) => (await call<Process>('GET', `/api/processes/${encodeURIComponent(id)}`)).data,
  processes: async (workflowId: string, stage: string, limit: number, cursor?: string | null) => {
    const q = new URLSearchParams({ workflowId, stage, limit: String(limit) });
    if (cursor) q.set('cursor', cursor);
    const page = await call<Process[]>('GET', `/api/processes?${q}`);
    return { items: page.data, nextCursor: page.nextCursor ?? null };
  },
};
