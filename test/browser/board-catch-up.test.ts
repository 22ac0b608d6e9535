import type { Page, Route } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import type { Process, Workflow } from '../../shared/protocol.js';
import { eventually } from '../harness/node.js';
import { boardNode, expectNoDuplicates, screenshot, signInWithToken } from './harness.js';

/**
 * A board that missed many events (offline while others worked on a large board) converges to the
 * server's truth: it does not ask for each card it has not loaded — a burst the rate limit refuses —
 * and a request the limit refused is made again after its Retry-After, not dropped.
 */

// Reads are tight (10 a second a user), as a busy node's would be for one tab that asks too much.
const LIMITS = 'process:transition=1000/1,handshake=1000/1,subscribe=1000/1,http:write=1000/1,http:read=10/1';
const N = 120;

const ctx = boardNode({ RATE_LIMITS: LIMITS, NODE_ID: 'node-catch-up' });

/** A board whose todo column is longer than a page; its cards newest first. */
async function longBoard(): Promise<{ wf: Workflow; cards: Process[] }> {
  const wf = await createBoard(ctx.node.url, ctx.adminToken);
  for (let i = 0; i < N; i += 20)
    await Promise.all(Array.from({ length: 20 }, (_, j) => createProcess(ctx.node.url, ctx.adminToken, wf.id, `Card ${i + j}`)));
  return { wf, cards: await all(wf) };
}

/** Every process of the workflow, newest first. Read with ada's budget, not the page's (bob's). */
async function all(wf: Workflow): Promise<Process[]> {
  const out: Process[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ workflowId: wf.id, limit: '200', ...(cursor ? { cursor } : {}) });
    const res: { status: number; body: { data: Process[]; nextCursor: string | null } } = await api(
      ctx.node.url,
      'GET',
      `/api/processes?${q}`,
      { token: ctx.adminToken },
    );
    if (res.status !== 200) throw new Error(`list: ${res.status} ${JSON.stringify(res.body)}`);
    out.push(...res.body.data);
    cursor = res.body.nextCursor;
  } while (cursor);
  return out;
}

async function move(processId: string, to: string): Promise<void> {
  const res = await api(ctx.node.url, 'POST', `/api/processes/${processId}/transition`, { token: ctx.adminToken, body: { to } });
  if (res.status !== 200) throw new Error(`move: ${res.status} ${JSON.stringify(res.body)}`);
}

/**
 * How the board differs from the server: every count is the column's total, a fully loaded column
 * shows exactly the column, every card shown is in its stage at its version.
 */
async function differences(page: Page, wf: Workflow): Promise<string[]> {
  const truth = await all(wf);
  const byId = new Map(truth.map((p) => [p.id, p]));
  const columns = await page.locator('.column').evaluateAll((cs) =>
    cs.map((c) => ({
      stage: (c as HTMLElement).dataset.stage ?? '',
      count: c.querySelector('.count')?.textContent ?? '',
      more: c.querySelector('button.more') !== null,
      cards: Array.from(c.querySelectorAll<HTMLElement>('.card')).map((el) => ({
        id: el.dataset.process ?? '',
        version: Number(el.dataset.version),
      })),
    })),
  );
  const diffs: string[] = [];
  for (const col of columns) {
    const here = truth.filter((p) => p.stage === col.stage);
    if (col.count !== String(here.length)) diffs.push(`${col.stage}: count ${col.count}, server ${here.length}`);
    if (!col.more && col.cards.length !== here.length) diffs.push(`${col.stage}: shows ${col.cards.length} of ${here.length}`);
    for (const c of col.cards) {
      const p = byId.get(c.id);
      if (p?.stage !== col.stage || p.version !== c.version)
        diffs.push(`${c.id}: shown in ${col.stage} v${c.version}, server ${p?.stage} v${p?.version}`);
    }
  }
  return diffs;
}

/** The page loses the network; its socket is cut on the server so it notices at once. */
async function goOffline(page: Page, userId: string): Promise<void> {
  await page.context().setOffline(true);
  for (const s of await ctx.node.io.fetchSockets()) if (s.data.principal.userId === userId) s.disconnect(true);
  await page.locator('#status:not([data-state="connected"])').waitFor();
}

describe('a board that missed many events', () => {
  it('catches up on cards it had not loaded without a request per card, and shows the server’s truth', async () => {
    const { wf, cards } = await longBoard();
    const { context, page } = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, ctx.bobToken);
    try {
      await expect(page.locator('.column[data-stage="todo"] .card').count()).resolves.toBe(50);
      await goOffline(page, 'bob');
      // The 40 oldest (not loaded) and 5 loaded cards move on while the page is away.
      const moved = [...cards.slice(-40), ...cards.slice(0, 5)];
      for (const p of moved) await move(p.id, 'doing');
      const perCard: string[] = [];
      page.on('request', (req) => {
        if (/\/api\/processes\/[^/?]+$/.test(new URL(req.url()).pathname)) perCard.push(req.url());
      });
      await context.setOffline(false);
      await page.locator('#status[data-state="connected"]').waitFor({ timeout: 20_000 });
      await eventually(async () => expect(await differences(page, wf)).toEqual([]), 20_000, 250);
      await expectNoDuplicates(page, 'bob');
      expect(perCard.length, 'requests for single cards').toBeLessThan(10);
      await screenshot(page, 'catch-up-large');
    } finally {
      await context.close();
    }
  });

  it('asks again for a column’s total the rate limit refused, after its Retry-After', async () => {
    const { wf, cards } = await longBoard();
    const { context, page } = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, ctx.bobToken);
    try {
      // The next total asked for is refused, as a node over its limit would.
      let refused = 0;
      await page.route(/\/api\/processes\?.*limit=1&/, async (route: Route) => {
        if (refused++ > 0) return route.continue();
        await route.fulfill({
          status: 429,
          headers: { 'retry-after': '1' },
          contentType: 'application/json',
          body: JSON.stringify({ error: { code: 'rate_limited', message: 'Too many requests; retry later.', retryAfterMs: 400 } }),
        });
      });
      await move(cards[0]!.id, 'doing');
      await move(cards.at(-1)!.id, 'doing');
      await page.locator('.column[data-stage="todo"] .count', { hasText: new RegExp(`^${N - 2}$`) }).waitFor({ timeout: 10_000 });
      expect(refused).toBeGreaterThan(1);
      await eventually(async () => expect(await differences(page, wf)).toEqual([]), 10_000, 250);
    } finally {
      await context.close();
    }
  });
});
