import { Agent, request } from 'node:http';
import type { FluxoEvent, TransitionResult } from '../../shared/protocol.js';
import type { WriteOutcome, WriteRecord } from './check.js';

/** One HTTP attempt as the writer saw it. */
export interface Attempt {
  writer: string;
  startedAt: number;
  ms: number;
  /** `ok`, or the failure: `503 store_unavailable`, `502`, `timeout`, `ECONNRESET`, … */
  kind: string;
}

export interface Write extends WriteRecord {
  writer: string;
  op: 'transition' | 'publish' | 'barrier';
  ackedAt?: number;
}

interface Answer {
  ok: boolean;
  status: number;
  kind: string;
  retryable: boolean;
  retryAfterMs?: number;
  data?: unknown;
}

/** Retried with the same requestId: the server may be down, draining, or still working on it. */
const RETRYABLE_4XX = new Set(['rate_limited', 'request_in_progress']);

/**
 * An HTTP client bound to one source address (so nginx's ip_hash pins it to one node), with a
 * deadline on every request. Every attempt is recorded, with its latency and how it failed.
 */
export class HttpSide {
  readonly attempts: Attempt[] = [];
  private readonly agent: Agent;

  constructor(
    readonly name: string,
    private readonly baseUrl: string,
    readonly localAddress: string,
    private readonly timeoutMs: number,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: 4, localAddress });
  }

  async send(method: string, path: string, auth: string, body: unknown): Promise<Answer> {
    const startedAt = Date.now();
    const answer = await this.exchange(method, path, auth, body);
    this.attempts.push({ writer: this.name, startedAt, ms: Date.now() - startedAt, kind: answer.kind });
    return answer;
  }

  close(): void {
    this.agent.destroy();
  }

  private exchange(method: string, path: string, auth: string, body: unknown): Promise<Answer> {
    const payload = JSON.stringify(body);
    return new Promise((resolve) => {
      let settled = false;
      const done = (a: Answer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(a);
      };
      const req = request(
        `${this.baseUrl}${path}`,
        {
          method,
          agent: this.agent,
          headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('error', (err: NodeJS.ErrnoException) => done(failure(err)));
          res.on('end', () => done(answerOf(res.statusCode ?? 0, text, res.headers['retry-after'])));
        },
      );
      // The deadline covers the whole exchange; past it the request is abandoned (it may still commit).
      const timer = setTimeout(() => {
        done({ ok: false, status: 0, kind: 'timeout', retryable: true });
        req.destroy();
      }, this.timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => done(failure(err)));
      req.end(payload);
    });
  }
}

function failure(err: NodeJS.ErrnoException): Answer {
  return { ok: false, status: 0, kind: err.code ?? err.message, retryable: true };
}

function answerOf(status: number, text: string, retryAfter: string | string[] | undefined): Answer {
  let parsed: { data?: unknown; error?: { code?: string; retryAfterMs?: number } } | null = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // nginx's own error pages are HTML
  }
  if (status >= 200 && status < 300) return { ok: true, status, kind: 'ok', retryable: false, data: parsed?.data };
  const code = parsed?.error?.code;
  const retryAfterMs = parsed?.error?.retryAfterMs ?? (typeof retryAfter === 'string' ? Number(retryAfter) * 1000 : undefined);
  return {
    ok: false,
    status,
    kind: code ? `${status} ${code}` : String(status),
    retryable: status >= 500 || status === 0 || (code !== undefined && RETRYABLE_4XX.has(code)),
    ...(retryAfterMs !== undefined && Number.isFinite(retryAfterMs) ? { retryAfterMs } : {}),
  };
}

export interface OwnedProcess {
  id: string;
  /** The stage the writer believes the process is at. */
  stage: string;
}

export interface WriterOptions {
  name: string;
  /** nginx. */
  url: string;
  localAddress: string;
  tenant: string;
  /** An editor token of the writer's own user. */
  token: string;
  publishKey: string;
  /** The writer's own processes: nobody else moves them, so it knows their stage. */
  processes: OwnedProcess[];
  /** The two stages of the workflows (each allows moving to the other). */
  stages: readonly [string, string];
  /** Rooms its custom events go to. */
  publishRooms: string[];
  /** Writes per second; an outage does not make it burst afterwards. */
  rateHz: number;
  /** Every `publishEvery`-th write is a publish, the others transitions. */
  publishEvery: number;
  timeoutMs: number;
  /** After `stop()`, how long a write that keeps failing is retried before it is left unknown. */
  drainMs: number;
  /**
   * false: each write is sent once, and one that gets no answer or a retryable failure stays
   * unknown — as a backend that fires and forgets — and ends the writer: so the write the fault
   * caught is its rooms' last. Its event may be committed all the same, and then only the server
   * can get it to the readers. @default true
   */
  retries?: boolean;
}

/**
 * A steady writer through nginx. Transitions and publishes carry a requestId (the write's tag) and
 * are retried with it on every retryable failure (the server answers a retry with the first
 * result), so each is applied at most once, and a write the check finds twice in the log is a
 * broken guarantee; unless `retries` is false. Every event carries `data.chaos` = its tag, `<writer>:<n>`.
 */
export class Writer {
  readonly writes: Write[] = [];
  readonly http: HttpSide;
  private stopping = false;
  private giveUpAt = Number.POSITIVE_INFINITY;
  private wake: (() => void) | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly o: WriterOptions) {
    this.http = new HttpSide(o.name, o.url, o.localAddress, o.timeoutMs);
  }

  get name(): string {
    return this.o.name;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops writing; resolves when the write in flight has settled (acked, rejected or given up). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.giveUpAt = Date.now() + this.o.drainMs;
    this.wake?.();
    await this.running;
    this.http.close();
  }

  /** When the writer last got an ack, or 0. */
  lastAckAt(): number {
    for (let i = this.writes.length - 1; i >= 0; i--) {
      const at = this.writes[i]!.ackedAt;
      if (at !== undefined) return at;
    }
    return 0;
  }

  private async loop(): Promise<void> {
    const interval = 1000 / this.o.rateHz;
    let next = Date.now();
    for (let n = 1; !this.stopping; n++) {
      await this.pause(next - Date.now());
      if (this.stopping) break;
      next = Math.max(next + interval, Date.now());
      if (n % this.o.publishEvery === 0) await this.publish(n);
      else await this.transition(n);
      if (this.o.retries === false && this.writes.at(-1)?.outcome !== 'acked') break;
    }
  }

  private async transition(n: number): Promise<void> {
    const proc = this.o.processes[n % this.o.processes.length]!;
    const [a, b] = this.o.stages;
    const to = proc.stage === a ? b : a;
    const tag = `${this.o.name}:${n}`;
    const write = this.record('transition', tag);
    const res = await this.untilAnswered(() =>
      this.http.send('POST', `/api/processes/${proc.id}/transition`, this.o.token, { to, requestId: tag, data: { chaos: tag } }),
    );
    if (!res) return;
    if (res.ok) {
      const { event, process } = res.data as TransitionResult;
      this.acked(write, [event]);
      proc.stage = process.stage;
      return;
    }
    write.outcome = 'rejected';
    // Only a move to where the process already is can be refused: an earlier write of unknown outcome got there.
    if (res.kind.endsWith('invalid_transition')) proc.stage = to;
  }

  private async publish(n: number): Promise<void> {
    const rooms = this.o.publishRooms;
    const room = rooms[Math.floor(n / this.o.publishEvery) % rooms.length]!;
    const tag = `${this.o.name}:${n}`;
    const write = this.record('publish', tag);
    const res = await this.untilAnswered(() =>
      this.http.send('POST', '/api/publish', this.o.publishKey, {
        tenant: this.o.tenant,
        room,
        type: 'chaos',
        data: { chaos: tag },
        requestId: tag,
      }),
    );
    if (!res) return;
    if (res.ok) this.acked(write, [res.data as FluxoEvent]);
    else write.outcome = 'rejected';
  }

  /**
   * Tries until an answer that is not retryable (ok or refused), with backoff; null once stop()'s
   * drain time is over (the write's outcome stays unknown). Every try is the same request, named
   * by the same requestId.
   */
  private async untilAnswered(send: () => Promise<Answer>): Promise<Answer | null> {
    for (let attempt = 0; ; attempt++) {
      const res = await send();
      if (res.ok || !res.retryable) return res;
      if (this.o.retries === false || Date.now() >= this.giveUpAt) return null;
      await this.pause(Math.max(res.retryAfterMs ?? 0, Math.min(1000, 100 * 2 ** attempt)));
    }
  }

  private record(op: Write['op'], tag: string): Write {
    const write: Write = { writer: this.o.name, op, tags: [tag], firstSentAt: Date.now(), outcome: 'unknown' };
    this.writes.push(write);
    return write;
  }

  private acked(write: Write, events: FluxoEvent[]): void {
    write.outcome = 'acked' satisfies WriteOutcome;
    write.acked = events.map((e) => ({ id: e.id, rooms: e.rooms }));
    write.ackedAt = Date.now();
  }

  /** Sleeps, but wakes at once on stop(). */
  private pause(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(finish, ms);
      function finish() {
        clearTimeout(t);
        resolve();
      }
      this.wake = finish;
    });
  }
}

/**
 * Publishes one event into every room, as one batch (consecutive ids, one commit), retried until
 * acked or `deadline`: the end-of-run barrier. Each try gets fresh tags and no requestId (the
 * barrier is whichever try is acked), so a try that committed without an answer is still told
 * apart. Resolves with the
 * acked event of each room, or null when no try was acked in time.
 */
export async function publishBarrier(
  http: HttpSide,
  o: { tenant: string; publishKey: string; rooms: string[]; deadline: number; writes: Write[] },
): Promise<Map<string, number> | null> {
  for (let attempt = 1; Date.now() < o.deadline; attempt++) {
    const tags = o.rooms.map((room) => `barrier:${attempt}:${room}`);
    const write: Write = { writer: http.name, op: 'barrier', tags, firstSentAt: Date.now(), outcome: 'unknown' };
    o.writes.push(write);
    const res = await http.send('POST', '/api/publish', o.publishKey, {
      events: o.rooms.map((room, i) => ({ tenant: o.tenant, room, type: 'chaos.barrier', data: { chaos: tags[i] } })),
    });
    if (res.ok) {
      const events = res.data as FluxoEvent[];
      write.outcome = 'acked';
      write.acked = events.map((e) => ({ id: e.id, rooms: e.rooms }));
      write.ackedAt = Date.now();
      return new Map(o.rooms.map((room, i) => [room, events[i]!.id]));
    }
    if (!res.retryable) {
      write.outcome = 'rejected';
      throw new Error(`barrier refused: ${res.kind}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}
