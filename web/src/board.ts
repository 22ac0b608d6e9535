import type { FluxoEvent, PresenceMember, Process, Workflow } from '../../shared/protocol.js';
import { type FluxoClient, FluxoError } from '../../shared/sdk/index.js';
import { movesFrom } from '../../shared/workflow-moves.js';
import { api, reason, sessionOver } from './api.js';
import { avatar, h } from './dom.js';
import { retrying } from './retry.js';

/** Cards fetched per column page: a column with thousands of processes loads them 50 at a time. */
const PAGE_SIZE = 50;
const FEED_SIZE = 50;
/**
 * A column with more pages than loaded shows the server's total; after an event touches it, the
 * total is asked again this long after the last such event, so a burst of moves costs one request.
 */
const TOTAL_REFRESH_MS = 300;
/**
 * Cards that live events name but this page has not loaded are fetched together, this long after
 * the first: a reconnect replays what was missed in one burst.
 */
const UNKNOWN_BATCH_MS = 100;
/**
 * Up to this many such cards are fetched one by one; more (a long offline spell on a large board)
 * reload the columns they went to instead: a request per card would meet the server's `http:read`
 * limit (100/s a user by default) and leave the board wrong.
 */
const FETCH_EACH_MAX = 8;

type ListState = 'loading' | 'ready' | 'error';
type FeedState = 'loading' | 'ready' | 'empty' | 'error';

interface Column {
  stage: string;
  items: Process[];
  cursor: string | null;
  /**
   * Where the page cursor stopped: the last card of the last page loaded. A card older than it is
   * the next pages' to show; one newer is shown now, even when it is older than every loaded card
   * (it left the column and came back): "Show more" starts after this card and never brings it again.
   */
  edge: PageKey | null;
  /** The server's count of the whole column; null until an answer gave it. */
  total: number | null;
  state: ListState;
  error: string | null;
  /** A page request is in flight: a second "Show more" waits for it instead of loading the same page twice. */
  busy: boolean;
  /** Bumped by a reload: answers to requests made before it are dropped. */
  generation: number;
  totalTimer: ReturnType<typeof setTimeout> | undefined;
  /** Only the answer to the latest total request counts (answers may overtake each other). */
  totalAsk: number;
  section: HTMLElement;
  list: HTMLOListElement;
  count: HTMLElement;
  footer: HTMLElement;
}

/** A move this page asked for: waiting for the server (or for the connection), or refused. */
interface Move {
  to: string;
  state: 'pending' | 'failed';
  /** Why it failed, in a few words. */
  why?: string;
}

export interface BoardOptions {
  client: FluxoClient;
  workflow: Workflow;
  me: { userId: string; role: string };
  root: HTMLElement;
  feed: HTMLElement;
  /** Says when the feed is loading, empty or failed. */
  feedStatus: HTMLElement;
  viewers: HTMLElement;
  notify: (message: string, kind?: 'error' | 'info') => void;
  /** A request was refused because the session is over (expired, revoked). */
  sessionOver: (err: FluxoError) => void;
}

/** One workflow as a live board: a column per stage, a card per process, presence and an event feed. */
export class Board {
  private readonly columns = new Map<string, Column>();
  private readonly cards = new Map<string, Process>();
  private readonly moves = new Map<string, Move>();
  /** Titles seen in `process.created` events: feed lines name cards that are not loaded. */
  private readonly titles = new Map<string, string>();
  private members: PresenceMember[] = [];
  /** How many view the board when the server leaves its list out (a huge room); null when `members` is the list. */
  private viewerCount: number | null = null;
  /** The card under the pointer, and the one holding keyboard focus: the user looks at the first, else the second. */
  private pointed: string | null = null;
  private keyboard: string | null = null;
  /** The card the others were last told this user looks at. */
  private looking: string | null = null;
  private presenceTimer: ReturnType<typeof setTimeout> | undefined;
  /** Cards live events named that are not loaded, with the stage the latest event put them in. */
  private readonly unknown = new Map<string, string | null>();
  private unknownTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly room: string;
  private stop: (() => Promise<void>) | null = null;
  private readonly listeners: (() => void)[] = [];
  private feedState: FeedState = 'loading';
  private closed = false;
  private dragging: string | null = null;

  constructor(private readonly o: BoardOptions) {
    this.room = `workflow:${o.workflow.id}`;
  }

  /** Resolves once every column has loaded its first page or shown why it could not. */
  async open(): Promise<void> {
    const { workflow, root, client } = this.o;
    root.replaceChildren();
    root.setAttribute('aria-label', `Board ${workflow.name}`);
    // The layout sizes the board for all its columns (style.css): the feed goes below when they would not fit beside it.
    root.style.setProperty('--stages', String(workflow.stages.length));
    for (const [index, stage] of workflow.stages.entries()) root.append(this.column(stage, index));
    this.listeners.push(
      client.on('presence', ({ room, members, count, truncated }) => {
        if (room !== this.room) return;
        this.members = members;
        this.viewerCount = truncated ? count : null;
        this.renderPresence();
      }),
      // History the log no longer has (retention) or a log that was replaced: the lists are the truth.
      client.on('gap', ({ room }) => {
        if (room === this.room) void this.reload();
      }),
      // A pending move says whether it waits for the server or for the connection.
      client.on('state', () => this.rerender(this.pendingStages())),
    );
    this.setFeed('loading');
    // Subscribe first, then load: an event committed while the pages load is applied on top (by version).
    const stop = client.subscribe(this.room, (event) => this.apply(event));
    this.stop = stop;
    const columns = Promise.all(workflow.stages.map((s) => this.loadMore(s)));
    // History up to the subscription's head, live events after it: the feed has neither a gap nor a repeat.
    // After the columns, so that its lines can name the cards they loaded.
    Promise.all([stop.ready, columns]).then(
      ([ready]) => void this.loadHistory(ready.position.id),
      (err: unknown) => {
        if (!this.closed) this.setFeed('error', `Live updates are unavailable: ${reason(err)}`);
      },
    );
    await columns;
    // Closed while loading (another workflow was picked): its room is left, it must not show up there.
    if (!this.closed) void client.setPresence(this.room, { status: 'viewing', card: null }).catch(() => {});
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const off of this.listeners.splice(0)) off();
    clearTimeout(this.presenceTimer);
    clearTimeout(this.unknownTimer);
    for (const col of this.columns.values()) clearTimeout(col.totalTimer);
    await this.stop?.();
  }

  private column(stage: string, index: number): HTMLElement {
    const list = h('ol', { class: 'cards', 'aria-label': `${stage} cards` });
    const footer = h('div', { class: 'column-footer' });
    const count = h('span', { class: 'count' });
    const section = h(
      'section',
      // tabindex -1: focus can land on the column when the element that had it is gone (see rerender).
      { class: 'column', 'data-stage': stage, 'aria-labelledby': `col-${index}`, tabindex: -1 },
      h('h2', { id: `col-${index}` }, stage, ' ', count),
      list,
      footer,
    );
    section.addEventListener('dragover', (e) => {
      const id = this.dragging;
      if (id && this.canMove(this.cards.get(id), stage)) {
        e.preventDefault();
        section.classList.add('drop-ok');
      }
    });
    section.addEventListener('dragleave', () => section.classList.remove('drop-ok'));
    section.addEventListener('drop', (e) => {
      e.preventDefault();
      section.classList.remove('drop-ok');
      const id = e.dataTransfer?.getData('text/plain') || this.dragging;
      if (id) void this.move(id, stage);
    });
    this.columns.set(stage, {
      stage,
      items: [],
      cursor: null,
      edge: null,
      total: null,
      state: 'loading',
      error: null,
      busy: false,
      generation: 0,
      totalTimer: undefined,
      totalAsk: 0,
      section,
      list,
      count,
      footer,
    });
    return section;
  }

  private canMove(p: Process | undefined, to: string): boolean {
    return (
      !!p &&
      this.o.me.role !== 'viewer' &&
      this.moves.get(p.id)?.state !== 'pending' &&
      movesFrom(this.o.workflow.transitions, p.stage).includes(to)
    );
  }

  /** Reloads every column from the API (after a gap in the room's stream). */
  private async reload(): Promise<void> {
    this.o.notify('Some updates could not be replayed; the board was reloaded.', 'info');
    await this.reloadColumns(this.o.workflow.stages);
  }

  /** Forgets what `stages` had loaded and loads their first pages (and totals) again. */
  private async reloadColumns(stages: Iterable<string>): Promise<void> {
    const reloading = [...new Set(stages)].filter((s) => this.columns.has(s));
    for (const stage of reloading) {
      const col = this.columns.get(stage)!;
      for (const p of col.items) this.cards.delete(p.id);
      col.items = [];
      col.cursor = null;
      col.edge = null;
      col.total = null;
      col.generation++;
      col.busy = false;
      clearTimeout(col.totalTimer);
    }
    await Promise.all(reloading.map((s) => this.loadMore(s)));
  }

  /** The next page of a column (the first one when nothing is loaded); a failure is shown in the column with a retry. */
  private async loadMore(stage: string): Promise<void> {
    const col = this.columns.get(stage)!;
    if (col.busy) return;
    col.busy = true;
    const generation = col.generation;
    col.state = 'loading';
    col.error = null;
    this.rerender([stage]);
    try {
      const cursor = col.cursor;
      // Refused by the rate limit (after a burst of catching up): asked again, the column keeps loading.
      const page = await retrying(
        () => api.processes(this.o.workflow.id, stage, PAGE_SIZE, cursor),
        () => !this.closed && generation === col.generation,
        (err) => err.code === 'rate_limited',
      );
      if (this.closed || generation !== col.generation) return;
      for (const p of page.items) {
        const known = this.cards.get(p.id);
        // The live event may already have moved it on: keep the newer version.
        if (known && known.version >= p.version) continue;
        if (known) this.remove(known);
        this.insert(p, true);
      }
      col.cursor = page.nextCursor;
      col.edge = page.items.at(-1) ?? col.edge;
      col.total = page.total;
      col.state = 'ready';
    } catch (err) {
      if (this.closed || generation !== col.generation) return;
      if (sessionOver(err)) {
        this.o.sessionOver(err);
        return;
      }
      col.state = 'error';
      col.error = reason(err);
    } finally {
      if (generation === col.generation) col.busy = false;
    }
    this.rerender([stage]);
  }

  /** Asks the server for the total of a column not fully loaded (see TOTAL_REFRESH_MS). */
  private refreshTotalSoon(stage: string | null): void {
    const col = stage === null ? undefined : this.columns.get(stage);
    if (!col || col.cursor === null) return;
    clearTimeout(col.totalTimer);
    col.totalTimer = setTimeout(async () => {
      const ask = ++col.totalAsk;
      const generation = col.generation;
      const current = () => !this.closed && ask === col.totalAsk && generation === col.generation;
      try {
        const page = await retrying(() => api.processes(this.o.workflow.id, col.stage, 1), current);
        if (!current()) return;
        col.total = page.total;
        this.renderCount(col);
      } catch {
        // Not retryable (the session is over: the page goes to sign-in), or a newer ask replaced this one.
      }
    }, TOTAL_REFRESH_MS);
  }

  private adjustTotal(stage: string, delta: number): void {
    const col = this.columns.get(stage);
    if (col?.total != null) col.total = Math.max(0, col.total + delta);
  }

  /** The feed's history: the newest events up to the subscription's head (`headId`). */
  private async loadHistory(headId: number): Promise<void> {
    if (this.closed) return;
    if (headId === 0) {
      this.setFeed(this.o.feed.children.length > 0 ? 'ready' : 'empty');
      return;
    }
    this.setFeed('loading');
    try {
      const events = await api.history(this.room, headId + 1, FEED_SIZE);
      if (this.closed) return;
      for (const event of events) this.addToFeed(event);
      this.setFeed(this.o.feed.children.length > 0 ? 'ready' : 'empty');
    } catch (err) {
      if (this.closed) return;
      if (sessionOver(err)) {
        this.o.sessionOver(err);
        return;
      }
      this.setFeed('error', `Could not load recent events: ${reason(err)}`, () => void this.loadHistory(headId));
    }
  }

  private setFeed(state: FeedState, message?: string, retry?: () => void): void {
    this.feedState = state;
    const { feed, feedStatus } = this.o;
    feed.setAttribute('aria-busy', String(state === 'loading'));
    feedStatus.dataset.state = state;
    const text =
      state === 'loading' ? 'Loading recent events…' : state === 'empty' ? 'No events yet.' : state === 'error' ? (message ?? '') : '';
    feedStatus.replaceChildren(
      ...(text ? [h('span', {}, text)] : []),
      ...(retry ? [h('button', { type: 'button', class: 'retry', onclick: retry }, 'Retry')] : []),
    );
    feedStatus.setAttribute('role', state === 'error' ? 'alert' : 'status');
    feedStatus.hidden = state === 'ready';
  }

  /** Applies a live event; versions make it safe against pages loaded before or after it. */
  private apply(event: FluxoEvent): void {
    if (this.closed) return;
    this.addToFeed(event);
    if (!event.processId || (event.type !== 'process.created' && event.type !== 'process.transitioned')) return;
    this.refreshTotalSoon(event.fromStage);
    this.refreshTotalSoon(event.toStage);
    const known = this.cards.get(event.processId);
    if (known) {
      if (event.version !== null && known.version >= event.version) return;
      // The card changed: a refusal shown on it is about a state that is gone.
      if (this.moves.get(known.id)?.state === 'failed') this.moves.delete(known.id);
      this.remove(known);
      const moved: Process = {
        ...known,
        stage: event.toStage ?? known.stage,
        version: event.version ?? known.version + 1,
        updatedAt: event.at,
      };
      this.insert(moved);
      if (moved.stage !== known.stage) {
        this.adjustTotal(known.stage, -1);
        this.adjustTotal(moved.stage, +1);
      }
      this.rerender([known.stage, moved.stage]);
      this.flash(moved.id);
      return;
    }
    // A card not loaded yet (on a later page, or new): fetched so the board shows it.
    this.unknown.set(event.processId, event.toStage);
    this.unknownTimer ??= setTimeout(() => this.fetchUnknown(), UNKNOWN_BATCH_MS);
  }

  /** The cards of `unknown`: one by one when they are few, else the columns they went to (FETCH_EACH_MAX). */
  private fetchUnknown(): void {
    this.unknownTimer = undefined;
    if (this.closed) return;
    const batch = [...this.unknown];
    this.unknown.clear();
    if (batch.length <= FETCH_EACH_MAX) {
      for (const [id] of batch) void this.fetchCard(id);
      return;
    }
    // An event without a stage says nothing of where the card went: every column is reloaded.
    const stages = batch.some(([, stage]) => stage === null) ? this.o.workflow.stages : batch.map(([, stage]) => stage!);
    void this.reloadColumns(stages);
  }

  private async fetchCard(id: string): Promise<void> {
    let p: Process;
    try {
      p = await retrying(
        () => api.process(id),
        () => !this.closed,
      );
    } catch {
      return; // not retryable: gone (not_found), or the session is over (the page goes to sign-in)
    }
    if (this.closed) return;
    const again = this.cards.get(p.id);
    if (again && again.version >= p.version) return;
    if (again) this.remove(again);
    if (this.insert(p)) {
      this.rerender(again ? [p.stage, again.stage] : [p.stage]);
      this.flash(p.id);
    } else if (again) this.rerender([again.stage]);
  }

  /**
   * Adds to its column if it falls within what is loaded (or `paged`: it comes from the next page);
   * returns whether it is shown.
   */
  private insert(p: Process, paged = false): boolean {
    const col = this.columns.get(p.stage);
    if (!col) return false;
    // Columns are newest first; an older card beyond the loaded pages appears when paged to.
    if (!paged && col.cursor && col.edge && newer(col.edge, p)) return false;
    const at = col.items.findIndex((x) => newer(p, x));
    col.items.splice(at < 0 ? col.items.length : at, 0, p);
    this.cards.set(p.id, p);
    return true;
  }

  private remove(p: Process): void {
    const col = this.columns.get(p.stage);
    if (col) col.items = col.items.filter((x) => x.id !== p.id);
    this.cards.delete(p.id);
  }

  /**
   * Asks the server to move a card. The card says so while it waits — for the answer, or for the
   * connection when offline (the SDK sends it once reconnected, within its offline timeout) — and
   * then moves, or says why it did not.
   */
  async move(id: string, to: string): Promise<void> {
    const p = this.cards.get(id);
    if (!p || this.moves.get(id)?.state === 'pending') return;
    const el = this.cardEl(id);
    // The version the user saw: a card rendered from an older state conflicts instead of silently overwriting.
    const expectedVersion = Number(el?.dataset.version ?? p.version);
    this.moves.set(id, { to, state: 'pending' });
    this.rerender([p.stage]);
    try {
      const result = await this.o.client.transition(id, to, { expectedVersion });
      if (this.closed) return;
      this.moves.delete(id);
      this.apply(result.event);
      // Already applied from the live event, or not: either way the card loses its pending mark.
      this.rerender([p.stage, result.process.stage]);
      this.o.notify(`Moved “${p.title}” to ${to}.`, 'info');
    } catch (err) {
      if (this.closed) return;
      this.moves.set(id, { to, state: 'failed', why: shortReason(err) });
      this.o.notify(describe(err, p.title), 'error');
      const stages = [this.cards.get(id)?.stage ?? p.stage];
      if (err instanceof FluxoError && err.code === 'version_conflict') {
        const current = err.body?.current as Process | undefined;
        if (current?.id === id) {
          const known = this.cards.get(id);
          if (known) this.remove(known);
          this.insert(current);
          stages.push(current.stage);
        }
      }
      this.rerender(stages);
    }
  }

  private pendingStages(): string[] {
    return [...this.moves].filter(([, m]) => m.state === 'pending').flatMap(([id]) => this.cards.get(id)?.stage ?? []);
  }

  private cardEl(id: string): HTMLElement | null {
    return this.o.root.querySelector<HTMLElement>(`.card[data-process="${CSS.escape(id)}"]`);
  }

  /**
   * Renders columns and keeps keyboard focus where the user was: rebuilding a column replaces its
   * elements, which would drop focus to <body> — after a keyboard move, or when someone else's
   * event re-renders the column being navigated. Focus follows the card (to the same button when
   * it is still there), else stays in the column.
   */
  private rerender(stages: Iterable<string>): void {
    const active = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const inBoard = active && this.o.root.contains(active) ? active : null;
    const cardId = inBoard?.closest<HTMLElement>('.card')?.dataset.process;
    const stage = inBoard?.closest<HTMLElement>('.column')?.dataset.stage;
    const to = inBoard?.dataset.to;
    for (const s of new Set(stages)) this.render(s);
    if (!inBoard || inBoard.isConnected) return;
    const card = cardId ? this.cardEl(cardId) : null;
    const button = card && to ? card.querySelector<HTMLElement>(`button[data-to="${CSS.escape(to)}"]`) : null;
    const column = stage ? this.columns.get(stage) : undefined;
    const fallback = column ? (column.footer.querySelector<HTMLElement>('button') ?? column.section) : null;
    (button ?? card ?? fallback)?.focus();
  }

  private render(stage: string): void {
    const col = this.columns.get(stage);
    if (!col) return;
    col.list.replaceChildren(...col.items.map((p) => this.card(p)));
    col.section.dataset.state = col.state;
    col.section.setAttribute('aria-busy', String(col.state === 'loading'));
    this.renderCount(col);
    const more = col.items.length > 0;
    const footer =
      col.state === 'loading'
        ? h('p', { class: 'loading' }, more ? 'Loading more…' : 'Loading cards…')
        : col.state === 'error'
          ? h(
              'div',
              { class: 'list-error', role: 'alert' },
              h('p', {}, `${more ? 'Could not load more cards' : 'Could not load cards'}: ${col.error ?? ''}`),
              h('button', { type: 'button', class: 'retry', onclick: () => void this.loadMore(stage) }, 'Retry'),
            )
          : col.cursor
            ? h('button', { type: 'button', class: 'more', onclick: () => void this.loadMore(stage) }, `Show ${PAGE_SIZE} more`)
            : more
              ? null
              : h('p', { class: 'empty' }, 'No cards');
    col.footer.replaceChildren(...(footer ? [footer] : []));
  }

  /** All loaded: the loaded cards are the count. More pages: the server's total. Unknown: says so, never blank. */
  private renderCount(col: Column): void {
    const { count } = col;
    if (col.total === null && col.cursor === null && col.items.length === 0 && col.state !== 'ready') {
      const [text, label] = col.state === 'loading' ? ['…', 'count loading'] : ['?', 'count unavailable'];
      count.textContent = text;
      // A symbol, so it is read out by its label.
      count.setAttribute('role', 'img');
      count.setAttribute('aria-label', label);
      count.title = label;
      return;
    }
    const n = col.cursor === null ? col.items.length : Math.max(col.total ?? 0, col.items.length);
    count.textContent = String(n);
    count.removeAttribute('role');
    count.removeAttribute('aria-label');
    count.title = `${n} ${n === 1 ? 'card' : 'cards'}`;
  }

  private card(p: Process): HTMLElement {
    const move = this.moves.get(p.id);
    const pending = move?.state === 'pending';
    const moves = this.o.me.role === 'viewer' || pending ? [] : movesFrom(this.o.workflow.transitions, p.stage);
    const note = move ? this.moveNote(move) : null;
    const li = h(
      'li',
      {
        class: 'card',
        tabindex: 0,
        draggable: moves.length > 0 ? 'true' : undefined,
        'data-process': p.id,
        'data-version': p.version,
        'data-move': move?.state,
        'aria-label': `${p.title}, ${p.stage}${note ? `. ${note}` : ''}`,
      },
      h('div', { class: 'card-title' }, p.title),
      h('div', { class: 'card-meta' }, p.assignee ? `@${p.assignee} · ` : '', `v${p.version}`),
      note && move ? h('p', { class: `move-note ${move.state}` }, note) : null,
      h('div', { class: 'card-viewers', 'aria-label': 'Viewing this card' }, ...this.viewersOf(p.id)),
      moves.length
        ? h(
            'div',
            { class: 'card-actions' },
            ...moves.map((to) =>
              h(
                'button',
                {
                  type: 'button',
                  class: 'move',
                  'data-to': to,
                  'aria-label': `Move ${p.title} to ${to}`,
                  onclick: () => void this.move(p.id, to),
                },
                `→ ${to}`,
              ),
            ),
          )
        : null,
    );
    li.addEventListener('dragstart', (e) => {
      this.dragging = p.id;
      e.dataTransfer?.setData('text/plain', p.id);
      li.classList.add('dragging');
    });
    li.addEventListener('dragend', () => {
      this.dragging = null;
      li.classList.remove('dragging');
    });
    li.addEventListener('mouseenter', () => {
      this.pointed = p.id;
      this.look();
    });
    li.addEventListener('mouseleave', () => {
      if (this.pointed !== p.id) return;
      this.pointed = null;
      this.look();
    });
    li.addEventListener('focusin', () => {
      this.keyboard = p.id;
      this.look();
    });
    li.addEventListener('focusout', (e) => {
      // Within the card (to one of its buttons) is still on it.
      if (li.contains(e.relatedTarget as Node | null) || this.keyboard !== p.id) return;
      this.keyboard = null;
      this.look();
    });
    return li;
  }

  private moveNote(move: Move): string {
    if (move.state === 'failed') return `Not moved to ${move.to}: ${move.why ?? 'refused'}`;
    return this.o.client.status.state === 'connected' ? `Moving to ${move.to}…` : `Pending: moves to ${move.to} once reconnected`;
  }

  private viewersOf(id: string): HTMLElement[] {
    return this.members
      .filter((m) => m.userId !== this.o.me.userId && (m.state as { card?: unknown } | null)?.card === id)
      .map((m) => avatar(m.userId, m.name, true));
  }

  /**
   * Tells the others which card this user looks at, or that it is none once pointer and focus have
   * left the cards. Debounced: hovering across a column, or a re-render that replaces the focused
   * card (focus leaves and comes back), is not a storm.
   */
  private look(): void {
    clearTimeout(this.presenceTimer);
    this.presenceTimer = setTimeout(() => {
      const card = this.pointed ?? this.keyboard;
      if (this.closed || card === this.looking) return;
      this.looking = card;
      void this.o.client.setPresence(this.room, { status: 'viewing', card }).catch(() => {});
    }, 150);
  }

  private renderPresence(): void {
    // Over the server's PRESENCE_MAX_CONNECTIONS only the count is known: avatars of the few seen would say they are all.
    if (this.viewerCount === null) this.o.viewers.replaceChildren(...this.members.map((m) => avatar(m.userId, m.name)));
    else this.o.viewers.replaceChildren(h('span', { class: 'viewer-count' }, `${this.viewerCount.toLocaleString()} people`));
    for (const el of this.o.root.querySelectorAll<HTMLElement>('.card')) {
      const box = el.querySelector('.card-viewers');
      if (box) box.replaceChildren(...this.viewersOf(el.dataset.process ?? ''));
    }
  }

  private flash(id: string): void {
    const el = this.cardEl(id);
    el?.classList.add('flash');
    setTimeout(() => el?.classList.remove('flash'), 1200);
  }

  /** Newest first by id, whichever arrives first: history loaded after live events goes below them. */
  private addToFeed(event: FluxoEvent): void {
    const feed = this.o.feed;
    // A move made here is applied from its ack and then arrives live as well.
    if (feed.querySelector(`[data-event="${event.id}"]`)) return;
    const created = titleIn(event);
    if (created && event.processId) this.titles.set(event.processId, created);
    const title = event.processId ? (this.cards.get(event.processId)?.title ?? this.titles.get(event.processId) ?? event.processId) : '';
    const what =
      event.type === 'process.transitioned'
        ? `${event.actor} moved ${title} ${event.fromStage} → ${event.toStage}`
        : event.type === 'process.created'
          ? `${event.actor} created ${title}`
          : `${event.actor}: ${event.type}`;
    const time = new Date(event.at).toLocaleTimeString();
    const li = h('li', { 'data-event': event.id }, h('time', { datetime: event.at }, time), ' ', what);
    const older = [...feed.children].find((el) => Number((el as HTMLElement).dataset.event) < event.id);
    feed.insertBefore(li, older ?? null);
    while (feed.children.length > FEED_SIZE) feed.lastElementChild?.remove();
    if (this.feedState === 'empty') this.setFeed('ready');
  }
}

/** What a column page's keyset cursor is made of: newest first by (createdAt, id). */
type PageKey = Pick<Process, 'createdAt' | 'id'>;

function newer(a: PageKey, b: PageKey): boolean {
  return a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.id > b.id);
}

/** `process.created` events carry the title they created the card with. */
function titleIn(event: FluxoEvent): string | null {
  return typeof event.data.title === 'string' ? event.data.title : null;
}

/** Why a move failed, in the few words the card has room for. */
function shortReason(err: unknown): string {
  if (!(err instanceof FluxoError)) return String(err);
  switch (err.code) {
    case 'version_conflict':
      return 'someone changed it first';
    case 'rate_limited':
      return 'too many moves, wait and retry';
    case 'invalid_transition':
      return 'not allowed from its stage';
    case 'forbidden':
      return 'your role cannot move cards';
    case 'disconnected':
    case 'timeout':
    case 'offline':
      return 'not connected';
    default:
      return err.message;
  }
}

/** The message the user reads for a failed move. */
export function describe(err: unknown, title: string): string {
  if (!(err instanceof FluxoError)) return `Could not move “${title}”: ${String(err)}`;
  switch (err.code) {
    case 'version_conflict':
      return `Conflict: “${title}” was changed by someone else. The board now shows its current state; try again.`;
    case 'rate_limited':
      return `Too many moves: wait ${Math.ceil((err.retryAfterMs ?? 1000) / 1000)} s and try again.`;
    case 'invalid_transition':
      return `“${title}” cannot move there from its current stage.`;
    case 'forbidden':
      return 'Your role cannot move cards.';
    case 'disconnected':
    case 'timeout':
    case 'offline':
      return `Not connected: “${title}” was not moved. It will work again once reconnected.`;
    default:
      return `Could not move “${title}”: ${err.message}`;
  }
}
