import type { FluxoEvent, Process, Role, RoomPosition, TransitionRequest, TransitionResult, Workflow } from '../../shared/protocol.js';
import { parseRoom } from '../../shared/rooms.js';
import type { CreateProcessInput, CreateWorkflowInput, ListProcessesQuery, PublishInput } from '../../shared/schemas.js';
import type { Principal } from '../auth/types.js';
import { AppError } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import type { EventPage, Page, Store } from '../store/store.js';

const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };

export function requireRole(p: Principal, role: Role): void {
  if (RANK[p.role] < RANK[role]) throw new AppError('forbidden', `This needs the ${role} role.`);
}

export type EventSink = (tenant: string, event: FluxoEvent) => void;

/**
 * The workflow use cases, shared by the HTTP API and the socket handlers: role checks,
 * read-your-writes routing, the store call, then fan-out — always after the commit.
 */
export class WorkflowService {
  /** `tenant\0user` → time of that user's last write, for read-your-writes. */
  private readonly lastWrite = new Map<string, number>();
  private inFlight = 0;
  private idle: (() => void) | null = null;

  constructor(
    private readonly store: Store,
    private readonly sink: EventSink,
    private readonly metrics: Metrics,
    private readonly readYourWritesMs: number,
  ) {
    // A write answered store_unavailable may still have committed (its COMMIT was in flight when
    // the deadline passed): its events go out like any other's, or its rooms' subscribers would
    // not see them before the rooms' next events.
    store.onLateCommit((tenant, events) => {
      metrics.lateCommits.inc(events.length);
      for (const event of events) this.emit(tenant, event);
    });
  }

  /** Writes under way; shutdown waits for them. */
  get pendingWrites(): number {
    return this.inFlight;
  }

  waitForWrites(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle = resolve;
    });
  }

  private fresh(p: Principal): boolean {
    const at = this.lastWrite.get(`${p.tenant}\0${p.userId}`);
    return at !== undefined && Date.now() - at < this.readYourWritesMs;
  }

  /**
   * A read by id: a replica that has not replayed someone else's fresh insert answers "none", so
   * a miss is confirmed on the primary before it becomes not_found.
   */
  private async pointRead<T>(p: Principal, read: (opts: { fresh: boolean }) => Promise<T | null>): Promise<T | null> {
    const fresh = this.fresh(p);
    const found = await read({ fresh });
    return found ?? (fresh ? null : read({ fresh: true }));
  }

  private async write<T>(op: string, p: Principal | null, fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    const end = this.metrics.dbDuration.startTimer({ op });
    try {
      return await fn();
    } finally {
      end();
      if (p) {
        this.lastWrite.set(`${p.tenant}\0${p.userId}`, Date.now());
        if (this.lastWrite.size > 100_000) this.pruneWriters();
      }
      if (--this.inFlight === 0 && this.idle) {
        this.idle();
        this.idle = null;
      }
    }
  }

  private pruneWriters(): void {
    const cutoff = Date.now() - this.readYourWritesMs;
    for (const [k, at] of this.lastWrite) if (at < cutoff) this.lastWrite.delete(k);
  }

  private emit(tenant: string, event: FluxoEvent): void {
    this.sink(tenant, event);
  }

  async createWorkflow(p: Principal, input: CreateWorkflowInput): Promise<Workflow> {
    requireRole(p, 'admin');
    return this.write('createWorkflow', p, () => this.store.createWorkflow(p.tenant, input));
  }

  async listWorkflows(p: Principal): Promise<Workflow[]> {
    return this.store.listWorkflows(p.tenant, { fresh: this.fresh(p) });
  }

  async getWorkflow(p: Principal, id: string): Promise<Workflow> {
    const wf = await this.pointRead(p, (opts) => this.store.getWorkflow(p.tenant, id, opts));
    if (!wf) throw new AppError('not_found', 'No such workflow.');
    return wf;
  }

  async createProcess(p: Principal, input: CreateProcessInput): Promise<Process> {
    requireRole(p, 'editor');
    const { process, event } = await this.write('createProcess', p, () =>
      this.store.createProcess({ tenant: p.tenant, userId: p.userId }, input),
    );
    this.emit(p.tenant, event);
    return process;
  }

  async getProcess(p: Principal, id: string): Promise<Process> {
    const proc = await this.pointRead(p, (opts) => this.store.getProcess(p.tenant, id, opts));
    if (!proc) throw new AppError('not_found', 'No such process.');
    return proc;
  }

  listProcesses(p: Principal, query: ListProcessesQuery): Promise<Page<Process>> {
    return this.store.listProcesses(p.tenant, query, { fresh: this.fresh(p) });
  }

  async transition(p: Principal, req: TransitionRequest): Promise<TransitionResult> {
    requireRole(p, 'editor');
    const result = await this.write('transition', p, () => this.store.transition({ tenant: p.tenant, userId: p.userId }, req));
    // A replay sends the event again: the retry may be there because the first node died between
    // commit and publish, and then nobody else would send it until its room's next event.
    // Subscribers drop the repeat by its offset (protocol.ts, rule 2).
    this.emit(p.tenant, result.event);
    return result;
  }

  /**
   * Publish API: another backend (authenticated by PUBLISH_API_KEY) writes a custom event. With a
   * `requestId`, a retry (same tenant) gets the first call's event back, `replayed`, and nothing
   * is written again (it is sent again, as a replayed transition is).
   */
  async publish(input: PublishInput, requestId?: string): Promise<{ event: FluxoEvent; replayed: boolean }> {
    // Checked here too, so that a single event's error does not name a batch's `events.0.room`.
    if (!parseRoom(input.room)) throw new AppError('invalid_room');
    const { events, replayed } = await this.publishMany([input], requestId);
    return { event: events[0]!, replayed };
  }

  /**
   * Several events at once: one group-commit item per tenant, submitted in the same tick, so they
   * normally share one transaction; each tenant's events get consecutive ids in the given order.
   * One `requestId` names the call: each tenant's part is claimed under it in that tenant, so a
   * retry after a part committed gets that part back and writes only the rest. `replayed` is true
   * when nothing of the call was written by this one.
   */
  async publishMany(inputs: PublishInput[], requestId?: string): Promise<{ events: FluxoEvent[]; replayed: boolean }> {
    const byTenant = new Map<string, { index: number; input: PublishInput }[]>();
    inputs.forEach((input, index) => {
      if (!parseRoom(input.room)) throw new AppError('invalid_room', `events.${index}.room is not a room.`);
      byTenant.set(input.tenant, [...(byTenant.get(input.tenant) ?? []), { index, input }]);
    });
    const out: FluxoEvent[] = new Array(inputs.length);
    let written = false;
    await this.write('publish', null, () =>
      Promise.all(
        [...byTenant].map(async ([tenant, list]) => {
          const { events, replayed } = await this.store.appendEventsOnce(
            tenant,
            list.map(({ input }) => ({ room: input.room, type: input.type, actor: 'api', data: input.data })),
            requestId,
          );
          written ||= !replayed;
          events.forEach((event, n) => {
            out[list[n]!.index] = event;
          });
        }),
      ),
    );
    // Replayed parts too (see transition).
    for (const [i, event] of out.entries()) this.emit(inputs[i]!.tenant, event);
    return { events: out, replayed: !written };
  }

  /** Read after joining a room (already authorized): where its stream stands. */
  roomPosition(p: Principal, room: string): Promise<RoomPosition> {
    return this.store.roomPosition(p.tenant, room);
  }

  async eventsAfter(p: Principal, room: string, after: number, limit: number): Promise<EventPage> {
    await this.authorizeRoom(p, room);
    return this.store.eventsAfter(p.tenant, room, after, limit, { fresh: this.fresh(p) });
  }

  async eventsBefore(p: Principal, room: string, after: number, before: number, limit: number): Promise<EventPage> {
    await this.authorizeRoom(p, room);
    return this.store.eventsBefore(p.tenant, room, after, before, limit);
  }

  /**
   * A room a principal may use: its own tenant's room, an existing workflow/process of its
   * tenant, or its own user room. Anything else answers as if it did not exist.
   */
  async authorizeRoom(p: Principal, room: string): Promise<string> {
    const parsed = parseRoom(room);
    if (!parsed) throw new AppError('invalid_room');
    switch (parsed.kind) {
      case 'tenant':
        return parsed.name;
      case 'user':
        if (parsed.id !== p.userId) throw new AppError('forbidden', 'You may only subscribe to your own user room.');
        return parsed.name;
      case 'workflow':
        if (!(await this.pointRead(p, (opts) => this.store.getWorkflow(p.tenant, parsed.id, opts))))
          throw new AppError('not_found', 'No such workflow.');
        return parsed.name;
      case 'process':
        if (!(await this.pointRead(p, (opts) => this.store.getProcess(p.tenant, parsed.id, opts))))
          throw new AppError('not_found', 'No such process.');
        return parsed.name;
    }
  }
}
