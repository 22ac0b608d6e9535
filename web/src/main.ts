import type { Workflow } from '../../shared/protocol.js';
import { type ConnectionStatus, connect, type FluxoClient } from '../../shared/sdk/index.js';
import { api, type Me, reason, sessionOver } from './api.js';
import { Board } from './board.js';
import { $, avatar, h } from './dom.js';

/** Remembered so the page can mint a fresh demo token when the server warns of expiry. */
const DEV_USER_KEY = 'fluxo.devUser';

/**
 * The tabs of one browser share the session cookie, so signing in or out in one is news for the
 * others — also for a tab whose connection is down, which would not hear the server's `token_revoked`.
 */
type SessionMessage = { type: 'signed-in'; userId: string; tenant: string } | { type: 'signed-out' };
const sessions = typeof BroadcastChannel === 'function' ? new BroadcastChannel('fluxo.session') : null;

let client: FluxoClient | null = null;
let board: Board | null = null;
/** Bumped by each openBoard(): a pick overtaken by a later one while the old board closed gives way. */
let boardPicks = 0;
/** Whose board this tab shows; null anywhere else (sign-in prompt, unreachable server). */
let current: Me | null = null;
/** The node offers demo sign-in (GET /auth/session says so; its /auth/dev-users answers 404 otherwise). */
let devLoginOffered = false;

function show(view: 'signin' | 'app' | 'problem'): void {
  $('#signin').hidden = view !== 'signin';
  $('#app').hidden = view !== 'app';
  $('#problem').hidden = view !== 'problem';
}

function setStatus(state: string, text: string): void {
  const el = $('#status');
  el.dataset.state = state;
  el.textContent = text;
}

function showStatus(s: ConnectionStatus): void {
  setStatus(
    s.state,
    s.state === 'connected'
      ? `Connected · node ${s.nodeId}`
      : s.state === 'reconnecting'
        ? `Reconnecting (attempt ${s.attempt})…`
        : s.state === 'offline'
          ? s.retrying
            ? 'Offline · retrying'
            : `Offline${s.error ? ` · ${s.error.message}` : ''}`
          : 'Connecting…',
  );
}

/** A message above the board. */
function notify(message: string, kind: 'error' | 'info' = 'info'): void {
  const box = $('#message');
  $('#message-text').textContent = message;
  box.className = `message ${kind}`;
  box.hidden = false;
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

/** A message on the sign-in prompt: why the user is there, or why signing in failed. */
function signInNote(message: string | null, kind: 'error' | 'info' = 'error'): void {
  const el = $('#signin-message');
  el.textContent = message ?? '';
  el.className = `message ${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.hidden = !message;
}

/** What a list area says while it loads, when it failed (with a retry) or when it is empty; hidden once filled. */
function listStatus(el: HTMLElement, state: 'loading' | 'error' | 'empty' | 'ready', text = '', retry?: () => void): void {
  el.dataset.state = state;
  el.hidden = state === 'ready';
  el.setAttribute('role', state === 'error' ? 'alert' : 'status');
  el.replaceChildren(
    ...(text ? [h('span', {}, text)] : []),
    ...(retry ? [h('button', { type: 'button', class: 'retry', onclick: retry }, 'Retry')] : []),
  );
}

/** Why a session that was there is over, in the user's words. */
function endedMessage(code: string | undefined): string {
  switch (code) {
    case 'token_expired':
      return 'Your session expired. Sign in again.';
    case 'token_revoked':
      return 'You were signed out (in another tab or window). Sign in again.';
    default:
      return 'Your session is no longer valid. Sign in again.';
  }
}

/** On load and whenever the session may have changed: one question to the server, answered 200 either way. */
async function boot(): Promise<void> {
  setStatus('connecting', 'Checking your session…');
  try {
    const status = await api.sessionStatus();
    devLoginOffered = status.devLogin === true;
    if (status.authenticated) await enterBoard(status);
    else await signInView(status.reason ? endedMessage(status.reason) : null, 'info');
  } catch (err) {
    show('problem');
    setStatus('offline', 'Offline');
    $('#problem-text').textContent = `Could not check your session: ${reason(err)}`;
  }
}

async function signInView(note: string | null = null, kind: 'error' | 'info' = 'info'): Promise<void> {
  current = null;
  delete document.body.dataset.ready;
  show('signin');
  setStatus('signed-out', 'Signed out');
  signInNote(note, kind);
  $('#dev-login').hidden = !devLoginOffered;
  if (devLoginOffered) await loadDevUsers();
}

async function loadDevUsers(): Promise<void> {
  const picker = $('#dev-users');
  const status = $('#dev-users-status');
  picker.replaceChildren();
  listStatus(status, 'loading', 'Loading demo users…');
  try {
    const { tenant, users } = await api.devUsers();
    const tenantInput = $('#dev-tenant') as HTMLInputElement;
    tenantInput.value ||= tenant;
    for (const u of users) {
      picker.append(
        h(
          'li',
          {},
          h(
            'button',
            {
              type: 'button',
              class: 'dev-user',
              'data-user': u.id,
              onclick: () => void devLogin(u.id, tenantInput.value.trim() || tenant),
            },
            avatar(u.id, u.name),
            h('span', {}, u.name, h('small', {}, u.role)),
          ),
        ),
      );
    }
    if (users.length === 0) listStatus(status, 'empty', 'No demo users.');
    else listStatus(status, 'ready');
  } catch (err) {
    listStatus(status, 'error', `Could not load the demo users: ${reason(err)}`, () => void loadDevUsers());
  }
}

async function devLogin(userId: string, tenant: string): Promise<void> {
  try {
    const me = await api.devLogin(userId, tenant);
    sessionStorage.setItem(DEV_USER_KEY, JSON.stringify({ userId, tenant }));
    signedIn(me);
  } catch (err) {
    signInNote(`Sign-in failed: ${reason(err)}`, 'error');
  }
}

function signedIn(me: Me): void {
  sessions?.postMessage({ type: 'signed-in', userId: me.userId, tenant: me.tenant } satisfies SessionMessage);
  void enterBoard(me);
}

/** A fresh token for the socket's `auth:refresh`; only demo sessions can mint one from the page. */
function tokenSource(): (() => Promise<string>) | undefined {
  const raw = sessionStorage.getItem(DEV_USER_KEY);
  if (!raw) return undefined;
  const { userId, tenant } = JSON.parse(raw) as { userId: string; tenant: string };
  return async () => (await api.devLogin(userId, tenant)).token;
}

/** Closes the connection and the board this tab has, if any. */
async function leaveBoard(): Promise<void> {
  current = null;
  delete document.body.dataset.ready;
  const old = client;
  client = null;
  old?.close();
  const b = board;
  board = null;
  await b?.close();
  // Nothing of that session stays in the page, even hidden: the next one may be another user's.
  for (const id of ['#board', '#feed', '#viewers', '#me']) $(id).replaceChildren();
}

async function enterBoard(me: Me): Promise<void> {
  await leaveBoard();
  current = me;
  show('app');
  $('#message').hidden = true;
  $('#me').replaceChildren(
    avatar(me.userId, me.name),
    h('span', { class: 'me-text' }, `${me.name ?? me.userId} · ${me.tenant} · ${me.role}`),
  );
  const getToken = tokenSource();
  const c = connect({ url: location.origin, ...(getToken ? { getToken } : {}) });
  client = c;
  c.on('state', (s) => {
    if (c !== client) return; // a connection this tab has left
    showStatus(s);
    // The session is over (expired without a way to refresh, revoked): back to sign-in.
    if (s.state === 'offline' && !s.retrying && sessionOver(s.error)) void sessionEnded(endedMessage(s.error.code), s.error.code);
  });
  c.on('error', (e) => {
    if (c === client) notify(e.message, 'error');
  });
  showStatus(c.status);
  await loadWorkflows(me);
}

/** The session ended while this tab showed a board: the sign-in prompt, saying why. */
async function sessionEnded(message: string, code?: string): Promise<void> {
  const was = current;
  if (!was) return; // already off the board
  // Only the tab that signed in can renew the session (its sessionStorage holds how); another tab of
  // the same browser shares the cookie, which that tab may have renewed meanwhile: carry on with it.
  if (code === 'token_expired') {
    const status = await api.sessionStatus().catch(() => null);
    if (current !== was) return;
    // A later expiry: renewed, not the same token still inside the server's clock tolerance.
    if (status?.authenticated && status.userId === was.userId && status.tenant === was.tenant && status.exp > was.exp) {
      await enterBoard(status);
      return;
    }
  }
  sessionStorage.removeItem(DEV_USER_KEY);
  await leaveBoard();
  await signInView(message, 'info');
}

async function loadWorkflows(me: Me): Promise<void> {
  const select = $('#workflow') as HTMLSelectElement;
  const root = $('#board');
  select.disabled = true;
  select.replaceChildren(h('option', {}, 'Loading…'));
  $('#feed').replaceChildren();
  listStatus($('#feed-status'), 'ready');
  root.replaceChildren(h('p', { class: 'loading', role: 'status' }, 'Loading workflows…'));
  let workflows: Workflow[];
  try {
    workflows = await api.workflows();
  } catch (err) {
    if (me !== current) return;
    if (sessionOver(err)) {
      await sessionEnded(endedMessage(err.code));
      return;
    }
    select.replaceChildren(h('option', {}, 'Unavailable'));
    root.replaceChildren(
      h(
        'div',
        { class: 'list-error', role: 'alert' },
        h('p', {}, `Could not load the workflows: ${reason(err)}`),
        h('button', { type: 'button', class: 'retry', onclick: () => void loadWorkflows(me) }, 'Retry'),
      ),
    );
    return;
  }
  if (me !== current) return;
  if (workflows.length === 0) {
    select.replaceChildren(h('option', {}, 'None yet'));
    root.replaceChildren(h('p', { class: 'empty' }, 'No workflows yet. Run ', h('code', {}, 'npm run seed'), '.'));
    listStatus($('#feed-status'), 'empty', 'No events yet.');
    document.body.dataset.ready = 'true';
    return;
  }
  select.replaceChildren(...workflows.map((w) => h('option', { value: w.id }, w.name)));
  select.disabled = false;
  const wanted = new URLSearchParams(location.search).get('workflow');
  const first = workflows.find((w) => w.id === wanted) ?? workflows[0]!;
  select.value = first.id;
  select.onchange = () => {
    const wf = workflows.find((w) => w.id === select.value);
    if (wf) void openBoard(wf, me);
  };
  await openBoard(first, me);
}

async function openBoard(workflow: Workflow, me: Me): Promise<void> {
  if (!client || me !== current) return;
  const pick = ++boardPicks;
  // Taken off `board` before the await: a second pick meanwhile must not close it again and then
  // open its board beside this one's (the page showed one, the other kept its room and presence).
  const old = board;
  board = null;
  await old?.close();
  if (pick !== boardPicks || !client || me !== current) return;
  $('#feed').replaceChildren();
  const b = new Board({
    client,
    workflow,
    me,
    root: $('#board'),
    feed: $('#feed'),
    feedStatus: $('#feed-status'),
    viewers: $('#viewers'),
    notify,
    sessionOver: (err) => void sessionEnded(endedMessage(err.code)),
  });
  board = b;
  await b.open();
  if (board === b) document.body.dataset.ready = 'true';
}

function wire(): void {
  $('#token-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = ($('#token') as HTMLInputElement).value.trim();
    try {
      const me = await api.session(token);
      // The token is the session's secret: it does not stay in the form once the cookie holds it.
      ($('#token') as HTMLTextAreaElement).value = '';
      sessionStorage.removeItem(DEV_USER_KEY);
      signedIn(me);
    } catch (err) {
      signInNote(`Sign-in failed: ${reason(err)}`, 'error');
    }
  });
  $('#logout').addEventListener('click', async () => {
    await leaveBoard();
    sessionStorage.removeItem(DEV_USER_KEY);
    try {
      await api.logout();
    } catch (err) {
      // The cookie may still be set: say so rather than pretend.
      await signInView(`Signing out may not have completed: ${reason(err)}`, 'error');
      return;
    }
    sessions?.postMessage({ type: 'signed-out' } satisfies SessionMessage);
    await signInView('You signed out.', 'info');
  });
  $('#dismiss').addEventListener('click', () => {
    $('#message').hidden = true;
  });
  $('#problem-retry').addEventListener('click', () => void boot());
  sessions?.addEventListener('message', (e: MessageEvent<SessionMessage>) => {
    const msg = e.data;
    if (msg.type === 'signed-out') void sessionEnded('You signed out in another tab.');
    // Signed in elsewhere: the shared cookie is that session now, so this tab follows it.
    else if (!current || current.userId !== msg.userId || current.tenant !== msg.tenant) void leaveBoard().then(boot);
  });
}

wire();
void boot();
