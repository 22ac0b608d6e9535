import type { Workflow } from '../../shared/protocol.js';
import { type ConnectionStatus, connect, type FluxoClient, FluxoError } from '../../shared/sdk/index.js';
import { api, type Me } from './api.js';
import { Board } from './board.js';
import { $, avatar, h } from './dom.js';

/** Remembered so the page can mint a fresh demo token when the server warns of expiry. */
const DEV_USER_KEY = 'fluxo.devUser';

let client: FluxoClient | null = null;
let board: Board | null = null;

function notify(message: string, kind: 'error' | 'info' = 'info'): void {
  const box = $('#message');
  $('#message-text').textContent = message;
  box.className = `message ${kind}`;
  box.hidden = false;
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

function showStatus(s: ConnectionStatus): void {
  const el = $('#status');
  el.dataset.state = s.state;
  const text =
    s.state === 'connected'
      ? `Connected · node ${s.nodeId}`
      : s.state === 'reconnecting'
        ? `Reconnecting (attempt ${s.attempt})…`
        : s.state === 'offline'
          ? s.retrying
            ? 'Offline · retrying'
            : `Offline${s.error ? ` · ${s.error.message}` : ''}`
          : 'Connecting…';
  el.textContent = text;
}

async function signInView(): Promise<void> {
  $('#app').hidden = true;
  const view = $('#signin');
  view.hidden = false;
  const picker = $('#dev-users');
  picker.replaceChildren();
  try {
    const { tenant, users } = await api.devUsers();
    ($('#dev-tenant') as HTMLInputElement).value ||= tenant;
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
              onclick: () => void devLogin(u.id, ($('#dev-tenant') as HTMLInputElement).value.trim() || tenant),
            },
            avatar(u.id, u.name),
            h('span', {}, u.name, h('small', {}, u.role)),
          ),
        ),
      );
    }
    $('#dev-login').hidden = false;
  } catch {
    $('#dev-login').hidden = true; // dev login is off: only the token form remains
  }
}

async function devLogin(userId: string, tenant: string): Promise<void> {
  try {
    await api.devLogin(userId, tenant);
    sessionStorage.setItem(DEV_USER_KEY, JSON.stringify({ userId, tenant }));
    await start();
  } catch (err) {
    notify(`Sign-in failed: ${err instanceof Error ? err.message : String(err)}`, 'error');
  }
}

/** A fresh token for the socket's `auth:refresh`; only demo sessions can mint one from the page. */
function tokenSource(): (() => Promise<string>) | undefined {
  const raw = sessionStorage.getItem(DEV_USER_KEY);
  if (!raw) return undefined;
  const { userId, tenant } = JSON.parse(raw) as { userId: string; tenant: string };
  return async () => (await api.devLogin(userId, tenant)).token;
}

async function start(): Promise<void> {
  let me: Me;
  try {
    me = await api.me();
  } catch {
    await signInView();
    return;
  }
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#me').replaceChildren(avatar(me.userId, me.name), h('span', {}, `${me.name ?? me.userId} · ${me.tenant} · ${me.role}`));

  const getToken = tokenSource();
  client?.close();
  client = connect({ url: location.origin, ...(getToken ? { getToken } : {}) });
  client.on('state', (s) => {
    showStatus(s);
    // The session is over (expired without a way to refresh, revoked): back to sign-in.
    if (s.state === 'offline' && !s.retrying && s.error?.code.startsWith('token_')) {
      notify(`Signed out: ${s.error.message}`, 'error');
      void signInView();
    }
  });
  client.on('error', (e) => notify(e.message, 'error'));
  showStatus(client.status);

  const workflows = await api.workflows();
  const select = $('#workflow') as HTMLSelectElement;
  select.replaceChildren(...workflows.map((w) => h('option', { value: w.id }, w.name)));
  if (workflows.length === 0) {
    $('#board').replaceChildren(h('p', { class: 'empty' }, 'No workflows yet. Run ', h('code', {}, 'npm run seed'), '.'));
    return;
  }
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
  if (!client) return;
  await board?.close();
  $('#feed').replaceChildren();
  board = new Board({ client, workflow, me, root: $('#board'), feed: $('#feed'), viewers: $('#viewers'), notify });
  await board.open();
  document.body.dataset.ready = 'true';
}

function wire(): void {
  $('#token-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = ($('#token') as HTMLInputElement).value.trim();
    try {
      await api.session(token);
      sessionStorage.removeItem(DEV_USER_KEY);
      await start();
    } catch (err) {
      notify(`Sign-in failed: ${err instanceof FluxoError ? err.message : String(err)}`, 'error');
    }
  });
  $('#logout').addEventListener('click', async () => {
    client?.close();
    client = null;
    await api.logout().catch(() => {});
    sessionStorage.removeItem(DEV_USER_KEY);
    location.reload();
  });
  $('#dismiss').addEventListener('click', () => {
    $('#message').hidden = true;
  });
}

wire();
void start();
