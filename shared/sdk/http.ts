import type { ErrorBody, ErrorCode } from '../errors.js';
import type {
  CreateProcessRequest,
  CreateWorkflowRequest,
  EventPage,
  EventsRequest,
  FluxoEvent,
  ListProcessesRequest,
  Me,
  Process,
  ProcessPage,
  TransitionResult,
  Workflow,
} from '../protocol.js';
import { FluxoError } from './errors.js';

/** Options of a transition, over the socket (`FluxoClient.transition`) or HTTP (`FluxoHttp.transition`). */
export interface TransitionOptions {
  /** Refuse (409 version_conflict) unless the process is at this version. */
  expectedVersion?: number;
  /** Idempotency key; generated when absent, and reused when the request is retried after a disconnect. */
  requestId?: string;
  data?: Record<string, unknown>;
}

export interface HttpOptions {
  /** Base URL of Fluxo (or of the load balancer), e.g. `http://localhost:8080`. In a page served by Fluxo: `location.origin`. */
  url: string;
  /**
   * A JWT, sent as `Authorization: Bearer`. A function is asked before every request (the latest
   * token of a connection that refreshes it). Without a token the session cookie is sent instead
   * (`credentials: 'include'`): browsers only, from the node's own page or an ALLOWED_ORIGINS page.
   */
  token?: string | (() => string | undefined);
  /**
   * Returns a fresh token: a request refused with `token_expired` asks it once, then is sent again
   * with it. It replaces a `token` string; a `token` function is asked again for later requests.
   */
  getToken?: () => Promise<string>;
  /** How long one request may take, in ms, before it fails with `timeout`. @default 10000 */
  timeoutMs?: number;
  /** The fetch to use. @default globalThis.fetch (Node 18+, browsers) */
  fetch?: typeof fetch;
  /** Extra request headers. */
  headers?: Record<string, string>;
}

type Query = Record<string, string | number | boolean | undefined>;

/**
 * The HTTP API, typed, with the same errors as the socket side: a refusal rejects with a FluxoError
 * carrying the server's catalog code (`forbidden`, `version_conflict` with `body.current`, …) and
 * the HTTP `status`; a request that cannot reach the server rejects with `offline` and one that takes
 * longer than `timeoutMs` with `timeout` (both retryable). Every call is one request: retrying is
 * the caller's choice — a `transition` retried with the same `requestId` is applied at most once.
 * @example
 * const http = new FluxoHttp({ url: 'http://localhost:8080', token });
 * const card = await http.createProcess({ workflowId, title: 'First card' });
 * await http.transition(card.id, 'doing', { expectedVersion: card.version });
 */
export class FluxoHttp {
  private readonly opts: HttpOptions;
  private readonly base: string;
  private token: HttpOptions['token'];

  constructor(opts: HttpOptions) {
    this.opts = opts;
    this.base = opts.url.replace(/\/+$/, '');
    this.token = opts.token;
  }

  /** Who the credentials say you are. */
  async me(): Promise<Me> {
    return (await this.call<Me>('GET', '/api/me')).data;
  }

  async listWorkflows(): Promise<Workflow[]> {
    return (await this.call<Workflow[]>('GET', '/api/workflows')).data;
  }

  async getWorkflow(id: string): Promise<Workflow> {
    return (await this.call<Workflow>('GET', `/api/workflows/${encodeURIComponent(id)}`)).data;
  }

  /** Needs the admin role. */
  async createWorkflow(input: CreateWorkflowRequest): Promise<Workflow> {
    return (await this.call<Workflow>('POST', '/api/workflows', { body: input })).data;
  }

  /** One page of processes, newest first; pass `nextCursor` back as `cursor` for the next one. */
  async listProcesses(query: ListProcessesRequest = {}): Promise<ProcessPage> {
    const page = await this.call<Process[]>('GET', '/api/processes', { query: { ...query } });
    return {
      items: page.data,
      nextCursor: (page.nextCursor as string | null | undefined) ?? null,
      ...(typeof page.total === 'number' ? { total: page.total } : {}),
    };
  }

  async getProcess(id: string): Promise<Process> {
    return (await this.call<Process>('GET', `/api/processes/${encodeURIComponent(id)}`)).data;
  }

  /** Needs the editor role; the process starts in `stage`, else the workflow's first stage. */
  async createProcess(input: CreateProcessRequest): Promise<Process> {
    return (await this.call<Process>('POST', '/api/processes', { body: input })).data;
  }

  /**
   * Moves a process to stage `to` (editor role). Rejects with `version_conflict` (`body.current` is
   * the process now), `invalid_transition`, `not_found`, `request_in_progress`, …
   */
  async transition(processId: string, to: string, opts: TransitionOptions = {}): Promise<TransitionResult> {
    const body = {
      to,
      ...(opts.expectedVersion !== undefined ? { expectedVersion: opts.expectedVersion } : {}),
      ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}),
      ...(opts.data ? { data: opts.data } : {}),
    };
    return (await this.call<TransitionResult>('POST', `/api/processes/${encodeURIComponent(processId)}/transition`, { body })).data;
  }

  /** The stored events of a room, in id order: what a subscriber missed, or its history. */
  async events(query: EventsRequest): Promise<EventPage> {
    const page = await this.call<FluxoEvent[]>('GET', '/api/events', { query: { ...query } });
    return { events: page.data, next: (page.next as number | null | undefined) ?? null };
  }

  private currentToken(): string | undefined {
    return typeof this.token === 'function' ? this.token() : this.token;
  }

  private async call<T>(
    method: string,
    path: string,
    req: { query?: Query; body?: unknown } = {},
  ): Promise<{ data: T } & Record<string, unknown>> {
    try {
      return await this.send<T>(method, path, req);
    } catch (err) {
      if (!(err instanceof FluxoError) || err.code !== 'token_expired' || !this.opts.getToken) throw err;
      // Refused before anything was done: safe to send again with a fresh token.
      const fresh = await this.opts.getToken();
      if (typeof this.token !== 'function') this.token = fresh;
      return this.send<T>(method, path, req, fresh);
    }
  }

  private async send<T>(
    method: string,
    path: string,
    req: { query?: Query; body?: unknown },
    token = this.currentToken(),
  ): Promise<{ data: T } & Record<string, unknown>> {
    const headers: Record<string, string> = { accept: 'application/json', ...(this.opts.headers ?? {}) };
    if (token) headers.authorization = `Bearer ${token}`;
    if (req.body !== undefined) headers['content-type'] = 'application/json';
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    const doFetch = this.opts.fetch ?? globalThis.fetch;
    let res: Response;
    let text: string;
    try {
      res = await doFetch(this.base + path + queryString(req.query), {
        method,
        headers,
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        // The cookie is the credential only when no token is given (a page on an allowed origin).
        credentials: token ? 'same-origin' : 'include',
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const name = (err as { name?: string } | null)?.name;
      if (name === 'TimeoutError' || name === 'AbortError')
        throw new FluxoError('timeout', `No answer to ${method} ${path} in ${timeoutMs} ms.`);
      throw new FluxoError('offline', `${method} ${path} did not reach the server: ${String(err)}`);
    }
    const json = parseJson(text);
    const parsed = typeof json === 'object' && json !== null ? (json as { data?: unknown; error?: Partial<ErrorBody> | null }) : undefined;
    if (res.ok && parsed && 'data' in parsed) return parsed as { data: T } & Record<string, unknown>;
    const error = parsed?.error;
    if (error && typeof error.code === 'string' && typeof error.message === 'string')
      throw FluxoError.fromBody(error as ErrorBody, res.status);
    // Not Fluxo's answer (a proxy's error page, a redirect to a login page, …): typed by its status.
    const code = res.ok ? 'internal' : codeForStatus(res.status);
    throw new FluxoError(code, `${method} ${path}: HTTP ${res.status} without a Fluxo answer.`, undefined, undefined, res.status);
  }
}

function queryString(query: Query | undefined): string {
  if (!query) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The catalog code a status without a Fluxo body most likely means; its `retryable` then decides a retry. */
function codeForStatus(status: number): ErrorCode {
  const known: Partial<Record<number, ErrorCode>> = {
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not_found',
    405: 'method_not_allowed',
    413: 'payload_too_large',
    429: 'rate_limited',
  };
  return known[status] ?? (status >= 500 ? 'internal' : 'bad_request');
}
