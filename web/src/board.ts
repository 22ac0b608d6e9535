import type { FluxoEvent, PresenceMember, Process, Workflow } from '../../shared/protocol.js';
import { type FluxoClient, FluxoError } from '../../shared/sdk/index.js';
import { movesFrom } from '../../shared/workflow-moves.js';
import { api } from './api.js';
import { avatar, h } from './dom.js';

/** Cards fetched per column page: a column with thousands of processes loads them 50 at a time. */
const PAGE_SIZE = 50;
const FEED_SIZE = 50;

interface Column {
  stage: string;
  items: Process[];
  cursor: string | null;
  list: HTMLOListElement;
  footer: HTMLElement;
}

export interface BoardOptions {
  client: FluxoClient;
  workflow: Workflow;
  me: { userId: string; role: string };
  root: HTMLElement;
  feed: HTMLElement;
  viewers: HTMLElement;
  notify: (message: string, kind?: 'error' | 'info') => void;
}

/** One workflow as a live board: a column per stage, a card per process, presence and an event feed. */
export class Board {
  private readonly columns = new Map<string, Column>();
  private readonly cards = new Map<string, Process>();
  private members: PresenceMember[] = [];
  private focused: string | null = null;
  private presenceTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly room: string;
  private stop: (() => Promise<void>) | null = null;

  constructor(private readonly o: BoardOptions) {
    this.room = `workflow:${o.workflow.id}`;
  }

  async open(): Promise<void> {
    const { workflow, root, client } = this.o;
    root.replaceChildren();
    root.setAttribute('aria-label', `Board ${workflow.name}`);
    for (const [index, stage] of workflow.stages.entries()) {
      const list = h('ol', { class: 'cards', 'aria-label': `${stage} cards` });
      const footer = h('div', { class: 'column-footer' });
      const section = h(
        'section',
        { class: 'column', 'data-stage': stage, 'aria-labelledby': `col-${index}` },
        h('h2', { id: `col-${index}` }, stage, ' ', h('span', { class: 'count' })),
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
      root.append(section);
      this.columns.set(stage, { stage, items: [], cursor: null, list, footer });
    }
    client.on('presence', ({ room, members }) => {
      if (room !== this.room) return;
      this.members = members;
      this.renderPresence();
    });
    // History the log no longer has (retention) or a log that was replaced: the lists are the truth.
    client.on('gap', ({ room }) => {
      if (room === this.room) void this.reload();
    });
    // Subscribe first, then load: an event committed while the pages load is applied on top (by version).
    const stop = client.subscribe(this.room, (event) => this.apply(event));
    this.stop = stop;
    await Promise.all([stop.ready.catch(() => {}), ...workflow.stages.map((s) => this.loadMore(s))]);
    void client.setPresence(this.room, { status: 'viewing', card: null }).catch(() => {});
  }

  async close(): Promise<void> {
    await this.stop?.();
  }

  private dragging: string | null = null;

  private canMove(p: Process | undefined, to: string): boolean {
    return !!p && this.o.me.role !== 'viewer' && movesFrom(this.o.workflow.transitions, p.stage).includes(to);
  }

  /** Reloads every column from the API (after a gap in the room's stream). */
  private async reload(): Promise<void> {
    this.cards.clear();
    for (const col of this.columns.values()) {
      col.items = [];
      col.cursor = null;
    }
    this.o.notify('Some updates could not be replayed; the board was reloaded.', 'info');
    await Promise.all(this.o.workflow.stages.map((s) => this.loadMore(s)));
  }

  private async loadMore(stage: string): Promise<void> {
    const col = this.columns.get(stage)!;
    const page = await api.processes(this.o.workflow.id, stage, PAGE_SIZE, col.cursor);
    for (const p of page.items) {
      const known = this.cards.get(p.id);
      // The live event may already have moved it on: keep the newer version.
      if (known && known.version >= p.version) continue;
      if (known) this.remove(known);
      this.insert(p, true);
    }
    col.cursor = page.nextCursor;
    this.render(stage);
  }

  /** Applies a live event; versions make it safe against pages loaded before or after it. */
  private apply(event: FluxoEvent): void {
    this.addToFeed(event);
    if (!event.processId || (event.type !== 'process.created' && event.type !== 'process.transitioned')) return;
    const known = this.cards.get(event.processId);
    if (known) {
      if (event.version !== null && known.version >= event.version) return;
      this.remove(known);
      const moved: Process = {
        ...known,
        stage: event.toStage ?? known.stage,
        version: event.version ?? known.version + 1,
        updatedAt: event.at,
      };
      this.insert(moved);
      this.render(known.stage);
      this.render(moved.stage);
      this.flash(moved.id);
      return;
    }
    // A card not loaded yet (on a later page, or new): fetch it so the board shows it.
    api
      .process(event.processId)
      .then((p) => {
        const again = this.cards.get(p.id);
        if (again && again.version >= p.version) return;
        if (again) this.remove(again);
        if (this.insert(p)) {
          this.render(p.stage);
          if (again) this.render(again.stage);
          this.flash(p.id);
        }
      })
      .catch(() => {});
  }

  /**
   * Adds to its column if it falls within what is loaded (or `paged`: it comes from the next page);
   * returns whether it is shown.
   */
  private insert(p: Process, paged = false): boolean {
    const col = this.columns.get(p.stage);
    if (!col) return false;
    const last = col.items[col.items.length - 1];
    // Columns are newest first; an older card beyond the loaded pages appears when paged to.
    if (!paged && col.cursor && last && newer(last, p)) return false;
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

  async move(id: string, to: string): Promise<void> {
    const p = this.cards.get(id);
    if (!p) return;
    const el = this.o.root.querySelector<HTMLElement>(`[data-process="${CSS.escape(id)}"]`);
    // The version the user saw: a card rendered from an older state conflicts instead of silently overwriting.
    const expectedVersion = Number(el?.dataset.version ?? p.version);
    try {
      const result = await this.o.client.transition(id, to, { expectedVersion });
      this.apply(result.event);
      this.o.notify(`Moved “${p.title}” to ${to}.`, 'info');
    } catch (err) {
      this.o.notify(describe(err, p.title), 'error');
      if (err instanceof FluxoError && err.code === 'version_conflict') {
        const current = err.body?.current as Process | undefined;
        if (current?.id === id) {
          const known = this.cards.get(id);
          if (known) this.remove(known);
          this.insert(current);
          if (known) this.render(known.stage);
          this.render(current.stage);
        }
      }
    }
  }

  private render(stage: string): void {
    const col = this.columns.get(stage);
    if (!col) return;
    col.list.replaceChildren(...col.items.map((p) => this.card(p)));
    const count = col.list.parentElement?.querySelector('.count');
    if (count) count.textContent = `${col.items.length}${col.cursor ? '+' : ''}`;
    const footer = col.cursor
      ? h('button', { type: 'button', class: 'more', onclick: () => void this.loadMore(stage) }, `Show ${PAGE_SIZE} more`)
      : col.items.length === 0
        ? h('p', { class: 'empty' }, 'No cards')
        : null;
    col.footer.replaceChildren(...(footer ? [footer] : []));
  }

  private card(p: Process): HTMLElement {
    const moves = this.o.me.role === 'viewer' ? [] : movesFrom(this.o.workflow.transitions, p.stage);
    const li = h(
      'li',
      {
        class: 'card',
        tabindex: 0,
        draggable: moves.length > 0 ? 'true' : undefined,
        'data-process': p.id,
        'data-version': p.version,
        'aria-label': `${p.title}, ${p.stage}`,
      },
      h('div', { class: 'card-title' }, p.title),
      h('div', { class: 'card-meta' }, p.assignee ? `@${p.assignee} · ` : '', `v${p.version}`),
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
    li.addEventListener('focusin', () => this.focus(p.id));
    li.addEventListener('mouseenter', () => this.focus(p.id));
    return li;
  }

  private viewersOf(id: string): HTMLElement[] {
    return this.members
      .filter((m) => m.userId !== this.o.me.userId && (m.state as { card?: unknown } | null)?.card === id)
      .map((m) => avatar(m.userId, m.name, true));
  }

  /** Tells the others which card this user looks at (debounced: hovering across a column is not a storm). */
  private focus(id: string): void {
    if (this.focused === id) return;
    this.focused = id;
    clearTimeout(this.presenceTimer);
    this.presenceTimer = setTimeout(() => {
      void this.o.client.setPresence(this.room, { status: 'viewing', card: id }).catch(() => {});
    }, 150);
  }

  private renderPresence(): void {
    this.o.viewers.replaceChildren(...this.members.map((m) => avatar(m.userId, m.name)));
    for (const el of this.o.root.querySelectorAll<HTMLElement>('.card')) {
      const box = el.querySelector('.card-viewers');
      if (box) box.replaceChildren(...this.viewersOf(el.dataset.process ?? ''));
    }
  }

  private flash(id: string): void {
    const el = this.o.root.querySelector(`[data-process="${CSS.escape(id)}"]`);
    el?.classList.add('flash');
    setTimeout(() => el?.classList.remove('flash'), 1200);
  }

  private addToFeed(event: FluxoEvent): void {
    // A move made here is applied from its ack and then arrives live as well.
    if (this.o.feed.querySelector(`[data-event="${event.id}"]`)) return;
    const title = event.processId ? (this.cards.get(event.processId)?.title ?? event.processId) : '';
    const what =
      event.type === 'process.transitioned'
        ? `${event.actor} moved ${title} ${event.fromStage} → ${event.toStage}`
        : event.type === 'process.created'
          ? `${event.actor} created ${title}`
          : `${event.actor}: ${event.type}`;
    const time = new Date(event.at).toLocaleTimeString();
    this.o.feed.prepend(h('li', { 'data-event': event.id }, h('time', { datetime: event.at }, time), ' ', what));
    while (this.o.feed.children.length > FEED_SIZE) this.o.feed.lastElementChild?.remove();
  }
}

function newer(a: Process, b: Process): boolean {
  return a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.id > b.id);
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
