import type { Page, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { Process, TransitionResult, Workflow } from '../../shared/protocol.js';
import {
  boardNode,
  card,
  cardIn,
  type SignedIn,
  screenshot,
  signInOnPage,
  signInWithToken,
  waitForBoard,
  waitForSignIn,
  watchProblems,
} from './harness.js';

/**
 * The board tells the truth (issue 11, item 4): what it shows is what the server has, and when it
 * cannot know — loading, a failed request, a move not yet confirmed, a session that ended — it says so.
 */

const LIMITS = 'process:transition=1000/1,handshake=1000/1,subscribe=1000/1,http:write=1000/1,http:read=1000/1,auth=1000/1';

const ctx = boardNode({ RATE_LIMITS: LIMITS, NODE_ID: 'node-truth' });

async function board(titles: string[]): Promise<{ wf: Workflow; cards: Process[] }> {
  const wf = await createBoard(ctx.node.url, ctx.adminToken);
  const cards: Process[] = [];
  for (const title of titles) cards.push(await createProcess(ctx.node.url, ctx.adminToken, wf.id, title));
  return { wf, cards };
}

async function move(processId: string, to: string): Promise<TransitionResult> {
  const res = await api<{ data: TransitionResult }>(ctx.node.url, 'POST', `/api/processes/${processId}/transition`, {
    token: ctx.adminToken,
    body: { to },
  });
  if (res.status !== 200) throw new Error(`move: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.data;
}

/** The user's sockets on the node (a tab has one). */
async function socketsOf(userId: string) {
  return (await ctx.node.io.fetchSockets()).filter((s) => s.data.principal.userId === userId);
}

/** A request the test lets through only when it says so: the page shows its loading state meanwhile. */
function gate(): { handler: (route: Route) => Promise<void>; open: () => void; held: Promise<void> } {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  let seen: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    seen = resolve;
  });
  return {
    held,
    open,
    handler: async (route) => {
      seen();
      await opened;
      await route.continue();
    },
  };
}

const unavailable = (route: Route) =>
  route.fulfill({
    status: 503,
    contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'store_unavailable', message: 'The database is unavailable.' } }),
  });

function countOf(page: Page, stage: string) {
  return page.locator(`.column[data-stage="${stage}"] .count`);
}

describe('the board tells the truth', () => {
  it('loads with no console error and no failed request, signed out and signed in; the favicon is served', async () => {
    const { wf, cards } = await board(['Quiet card']);
    await move(cards[0]!.id, 'doing');
    const context = await ctx.browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const problems = watchProblems(page);
    const apiCalls: string[] = [];
    page.on('request', (req) => {
      const path = new URL(req.url()).pathname;
      if (path.startsWith('/api/') || path.startsWith('/auth/')) apiCalls.push(`${req.method()} ${path}`);
    });
    try {
      await page.goto(`${ctx.node.url}/?workflow=${wf.id}`);
      await waitForSignIn(page);
      // The page asked who is signed in without provoking a 401 (GET /auth/session answers 200 either way).
      expect(apiCalls[0]).toBe('GET /auth/session');
      await signInOnPage(page, ctx.adminToken);
      await page.reload();
      await waitForBoard(page);
      await page.locator('#feed li').first().waitFor();
      await expect(page.locator('#feed-status').getAttribute('data-state')).resolves.toBe('ready');
      expect(problems).toEqual([]);
      expect(apiCalls).not.toContain('GET /api/me');

      const icon = await page.locator('link[rel="icon"]').getAttribute('href');
      const served = await page.request.get(new URL(icon ?? '/nope', ctx.node.url).toString());
      expect(served.status()).toBe(200);
      expect(served.headers()['content-type']).toBe('image/svg+xml');
      expect(await served.text()).toContain('<svg');
    } finally {
      await context.close();
    }
  });

  it('shows why signing in failed on the sign-in prompt itself', async () => {
    const context = await ctx.browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(ctx.node.url);
      await waitForSignIn(page);
      const forged = await token({ sub: 'mallory', tid: 'acme', secret: 'another-secret-that-is-long-enough-for-hs256' });
      await page.fill('#token', forged);
      await page.click('#token-form button[type=submit]');
      const message = page.locator('#signin-message');
      await message.waitFor({ state: 'visible' });
      // The server's reason, as its verifier words it.
      await expect(message.textContent()).resolves.toMatch(/^Sign-in failed: The token .*(signature|signed)/);
      await expect(message.getAttribute('role')).resolves.toBe('alert');
      await expect(page.locator('#token-form').isVisible()).resolves.toBe(true);
      await screenshot(page, 'truth-signin-failed');
    } finally {
      await context.close();
    }
  });

  it('signing out in one tab brings the other to the sign-in prompt, even while its connection is down', async () => {
    const { wf, cards } = await board(['Shared card']);
    // Signing out revokes the token: this test has its own user and tokens.
    const dana = () => token({ sub: 'dana', tid: 'acme', role: 'editor', name: 'Dana' });
    const a = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, await dana());
    try {
      const before = new Set((await socketsOf('dana')).map((s) => s.id));
      const tabB = await a.context.newPage();
      await tabB.goto(`${ctx.node.url}/?workflow=${wf.id}`);
      await waitForBoard(tabB);
      await cardIn(tabB, 'todo', cards[0]!.id).waitFor();
      // Tab B cannot hear the server any more: its socket is cut and every reconnect fails.
      await tabB.routeWebSocket('**/socket.io/**', (ws) => ws.close());
      await tabB.route('**/socket.io/**', (route) => route.abort());
      const bSockets = (await socketsOf('dana')).filter((s) => !before.has(s.id));
      expect(bSockets).toHaveLength(1);
      bSockets[0]!.disconnect(true);
      await tabB.locator('#status:not([data-state="connected"])').waitFor();

      await a.page.click('#logout');
      await waitForSignIn(a.page);
      await expect(a.page.locator('#signin-message').textContent()).resolves.toBe('You signed out.');

      await waitForSignIn(tabB);
      await expect(tabB.locator('#signin-message').textContent()).resolves.toBe('You signed out in another tab.');
      await expect(tabB.locator('#board .card').count()).resolves.toBe(0);
      await screenshot(tabB, 'truth-signed-out-elsewhere');

      // Signing in again in one tab brings the other back to the board.
      await tabB.unrouteAll();
      await signInOnPage(a.page, await dana());
      await waitForBoard(tabB);
      await cardIn(tabB, 'todo', cards[0]!.id).waitFor();
    } finally {
      await a.context.close();
    }
  });

  it('a board whose token is revoked elsewhere goes to the sign-in prompt and says why', async () => {
    const { wf } = await board(['Revoked card']);
    const own = await token({ sub: 'carol', tid: 'acme', role: 'editor', name: 'Carol' });
    const c = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, own);
    try {
      // Logged out from somewhere else (a script, another ctx.browser): the server disconnects with token_revoked.
      const out = await api(ctx.node.url, 'POST', '/auth/logout', { token: own, body: {} });
      expect(out.status).toBe(200);
      await waitForSignIn(c.page);
      await expect(c.page.locator('#signin-message').textContent()).resolves.toBe(
        'You were signed out (in another tab or window). Sign in again.',
      );
    } finally {
      await c.context.close();
    }
  });

  it('says when a column, the workflows or the history are loading or failed — never a blank count — and recovers on Retry', async () => {
    const { wf, cards } = await board(['Card one', 'Card two']);
    await move(cards[0]!.id, 'doing');
    const { context, page } = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, ctx.adminToken);
    try {
      // Loading: the todo column's page is held.
      const held = gate();
      await page.route(/\/api\/processes\?.*stage=todo/, held.handler);
      await page.reload();
      await held.held;
      const todo = page.locator('.column[data-stage="todo"]');
      await todo.locator('.column-footer', { hasText: 'Loading cards…' }).waitFor();
      await expect(todo.getAttribute('aria-busy')).resolves.toBe('true');
      await expect(countOf(page, 'todo').textContent()).resolves.toBe('…');
      held.open();
      await cardIn(page, 'todo', cards[1]!.id).waitFor();
      await expect(countOf(page, 'todo').textContent()).resolves.toBe('1');
      await page.unrouteAll();

      // A failing list: an error with a retry in that column, "?" as its count; the other columns are fine.
      await page.route(/\/api\/processes\?.*stage=doing/, unavailable);
      await page.reload();
      await waitForBoard(page);
      const doing = page.locator('.column[data-stage="doing"]');
      const error = doing.locator('.list-error[role="alert"]');
      await error.waitFor();
      await expect(error.textContent()).resolves.toContain('Could not load cards: The database is unavailable.');
      await expect(countOf(page, 'doing').textContent()).resolves.toBe('?');
      await expect(countOf(page, 'todo').textContent()).resolves.toBe('1');
      await expect(countOf(page, 'done').textContent()).resolves.toBe('0');
      await expect(page.locator('.column[data-stage="done"] .empty').textContent()).resolves.toBe('No cards');
      await screenshot(page, 'truth-column-failed');
      await page.unrouteAll();
      await error.locator('button', { hasText: 'Retry' }).click();
      await cardIn(page, 'doing', cards[0]!.id).waitFor();
      await expect(countOf(page, 'doing').textContent()).resolves.toBe('1');

      // The workflows.
      await page.route('**/api/workflows', unavailable);
      await page.reload();
      const wfError = page.locator('#board .list-error[role="alert"]');
      await wfError.waitFor();
      await expect(wfError.textContent()).resolves.toContain('Could not load the workflows: The database is unavailable.');
      await page.unrouteAll();
      await wfError.locator('button', { hasText: 'Retry' }).click();
      await waitForBoard(page);
      await cardIn(page, 'doing', cards[0]!.id).waitFor();

      // The feed's history.
      await page.route(/\/api\/events\?/, unavailable);
      await page.reload();
      await waitForBoard(page);
      const feedStatus = page.locator('#feed-status[data-state="error"][role="alert"]');
      await feedStatus.waitFor();
      await expect(feedStatus.textContent()).resolves.toContain('Could not load recent events: The database is unavailable.');
      await page.unrouteAll();
      await feedStatus.locator('button', { hasText: 'Retry' }).click();
      await page.locator('#feed-status[data-state="ready"]').waitFor({ state: 'attached' });
    } finally {
      await context.close();
    }
  });

  it('shows recent history in the feed on load, newest first, and an empty board as empty', async () => {
    const { wf, cards } = await board(['History one', 'History two']);
    const moved = await move(cards[0]!.id, 'doing');
    const { context, page } = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, ctx.bobToken);
    try {
      await page.locator('#feed li').nth(2).waitFor();
      await expect(
        page.locator('#feed li').evaluateAll((lis) => lis.map((li) => li.textContent?.replace(/^\S+ (AM |PM )?/, ''))),
      ).resolves.toEqual(['ada moved History one todo → doing', 'ada created History two', 'ada created History one']);
      await expect(page.locator('#feed li').first().getAttribute('data-event')).resolves.toBe(String(moved.event.id));

      // An empty board says so, and stops saying so once something happens.
      const empty = await createBoard(ctx.node.url, ctx.adminToken);
      await page.goto(`${ctx.node.url}/?workflow=${empty.id}`);
      await waitForBoard(page);
      await page.locator('#feed-status[data-state="empty"]', { hasText: 'No events yet.' }).waitFor();
      for (const stage of empty.stages) {
        await expect(countOf(page, stage).textContent()).resolves.toBe('0');
        await expect(page.locator(`.column[data-stage="${stage}"] .empty`).textContent()).resolves.toBe('No cards');
      }
      const p = await createProcess(ctx.node.url, ctx.adminToken, empty.id, 'First one');
      await cardIn(page, 'todo', p.id).waitFor();
      await page.locator('#feed-status[data-state="ready"]').waitFor({ state: 'attached' });
      await expect(page.locator('#feed li').first().textContent()).resolves.toContain('ada created First one');
      await expect(countOf(page, 'todo').textContent()).resolves.toBe('1');
    } finally {
      await context.close();
    }
  });

  it('counts are the real totals of columns longer than a page, and follow moves made elsewhere', async () => {
    const wf = await createBoard(ctx.node.url, ctx.adminToken);
    const N = 120;
    const made: Process[] = [];
    for (let i = 0; i < N; i += 20)
      made.push(
        ...(await Promise.all(Array.from({ length: 20 }, (_, j) => createProcess(ctx.node.url, ctx.adminToken, wf.id, `Bulk ${i + j}`)))),
      );
    const { context, page } = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, ctx.adminToken);
    try {
      const todo = page.locator('.column[data-stage="todo"] .card');
      await expect(todo.count()).resolves.toBe(50);
      await expect(countOf(page, 'todo').textContent()).resolves.toBe(String(N));
      await page.click('.column[data-stage="todo"] button.more');
      await page.waitForFunction(() => document.querySelectorAll('.column[data-stage="todo"] .card').length === 100);
      await expect(countOf(page, 'todo').textContent()).resolves.toBe(String(N));

      // Moved by someone else: one loaded card and one beyond the loaded pages (the oldest).
      const oldest = made.reduce((a, b) => (a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id) ? a : b));
      const loaded = (await todo.first().getAttribute('data-process')) ?? '';
      await move(loaded, 'doing');
      await move(oldest.id, 'doing');
      await page.locator('.column[data-stage="todo"] .count', { hasText: new RegExp(`^${N - 2}$`) }).waitFor();
      await page.locator('.column[data-stage="doing"] .count', { hasText: /^2$/ }).waitFor();
      await screenshot(page, 'truth-totals');
    } finally {
      await context.close();
    }
  });

  describe('a move made while offline', () => {
    let bob: SignedIn;
    let wf: Workflow;
    let cards: Process[];

    beforeAll(async () => {
      ({ wf, cards } = await board(['Offline one', 'Offline two']));
      bob = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, ctx.bobToken);
    });
    afterAll(async () => {
      await bob?.context.close();
    });

    /** Bob's tab loses the network; the server-side socket is cut so the page notices at once. */
    async function goOffline(): Promise<void> {
      await bob.context.setOffline(true);
      for (const s of await socketsOf('bob')) s.disconnect(true);
      await bob.page.locator('#status:not([data-state="connected"])').waitFor();
    }

    it('is shown as pending, then confirmed once the connection is back', async () => {
      const p = cards[0]!;
      await goOffline();
      await card(bob.page, p.id).locator('button[data-to="doing"]').click();
      const pending = cardIn(bob.page, 'todo', p.id);
      await pending.locator('.move-note.pending', { hasText: 'Pending: moves to doing once reconnected' }).waitFor();
      await expect(pending.getAttribute('data-move')).resolves.toBe('pending');
      await expect(pending.locator('button.move').count()).resolves.toBe(0);
      // Back online at once: the SDK sends a move made offline only within its offline timeout (10 s).
      await bob.context.setOffline(false);
      const confirmed = cardIn(bob.page, 'doing', p.id);
      await confirmed.waitFor({ timeout: 15_000 });
      await bob.page.locator(`.card[data-process="${p.id}"]:not([data-move])`).waitFor();
      await bob.page.locator('#message', { hasText: `Moved “${p.title}” to doing.` }).waitFor();
      const stored = await api<{ data: Process }>(ctx.node.url, 'GET', `/api/processes/${p.id}`, { token: ctx.adminToken });
      expect(stored.body.data).toMatchObject({ stage: 'doing', version: 2 });
    });

    it('is shown as pending, then failed when someone else moved the card meanwhile', async () => {
      const p = cards[1]!;
      await waitForBoard(bob.page);
      await goOffline();
      await card(bob.page, p.id).locator('button[data-to="doing"]').click();
      await cardIn(bob.page, 'todo', p.id).locator('.move-note.pending').waitFor();
      await move(p.id, 'doing');
      await bob.context.setOffline(false);
      const failed = bob.page.locator(`.card[data-process="${p.id}"][data-move="failed"]`);
      await failed.waitFor({ timeout: 15_000 });
      await expect(failed.locator('.move-note.failed').textContent()).resolves.toBe('Not moved to doing: someone changed it first');
      await cardIn(bob.page, 'doing', p.id).waitFor();
      await bob.page.locator('#message[role="alert"]', { hasText: 'Conflict' }).waitFor();
      await screenshot(bob.page, 'truth-move-failed');
    });
  });
});
