import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import type { Process, Workflow } from '../../shared/protocol.js';
import { boardNode, card, cardIn, expectNoDuplicates, screenshot, signInWithToken } from './harness.js';

/**
 * A column longer than a page shows 50 cards and "Show 50 more". A card that leaves the loaded part
 * of such a column and comes back is shown again: the page cursor stopped after it, so "Show more"
 * would never bring it back.
 */

const LIMITS = 'process:transition=1000/1,handshake=1000/1,subscribe=1000/1,http:write=1000/1,http:read=1000/1';
const N = 120;

const ctx = boardNode({ RATE_LIMITS: LIMITS, NODE_ID: 'node-paging' });

async function longBoard(): Promise<Workflow> {
  const wf = await createBoard(ctx.node.url, ctx.adminToken);
  for (let i = 0; i < N; i += 20)
    await Promise.all(Array.from({ length: 20 }, (_, j) => createProcess(ctx.node.url, ctx.adminToken, wf.id, `Card ${i + j}`)));
  return wf;
}

/** The oldest card loaded in the todo column: the last before "Show 50 more". */
async function oldestLoaded(page: Page): Promise<Process> {
  const todo = page.locator('.column[data-stage="todo"] .card');
  await expect(todo.count()).resolves.toBe(50);
  const id = (await todo.last().getAttribute('data-process')) ?? '';
  const res = await api<{ data: Process }>(ctx.node.url, 'GET', `/api/processes/${id}`, { token: ctx.adminToken });
  return res.body.data;
}

function countOf(page: Page, stage: string) {
  return page.locator(`.column[data-stage="${stage}"] .count`);
}

/** Pages the todo column to its end; every card once, as many as the server has. */
async function pageToEnd(page: Page): Promise<void> {
  const more = page.locator('.column[data-stage="todo"] button.more');
  while ((await more.count()) > 0) {
    const before = await page.locator('.column[data-stage="todo"] .card').count();
    await more.click();
    await page.waitForFunction((n) => document.querySelectorAll('.column[data-stage="todo"] .card').length > n, before);
  }
  await expectNoDuplicates(page, 'ada');
}

describe('a column longer than a page', () => {
  it('shows again the oldest loaded card when the user moves it out and straight back', async () => {
    const wf = await longBoard();
    const { context, page } = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, ctx.adminToken);
    try {
      const p = await oldestLoaded(page);
      await card(page, p.id).locator('button[data-to="doing"]').click();
      await cardIn(page, 'doing', p.id).locator('button[data-to="todo"]').click();
      await page.locator('#message', { hasText: `Moved “${p.title}” to todo.` }).waitFor();
      await cardIn(page, 'todo', p.id).waitFor();
      await expect(page.locator('.column[data-stage="todo"] .card').count()).resolves.toBe(50);
      await expect(countOf(page, 'todo').textContent()).resolves.toBe(String(N));
      await screenshot(page, 'paging-moved-back');
      await pageToEnd(page);
      await expect(page.locator('.column[data-stage="todo"] .card').count()).resolves.toBe(N);
    } finally {
      await context.close();
    }
  });

  it('keeps the oldest loaded card on a version conflict that leaves it where it was', async () => {
    const wf = await longBoard();
    const { context, page } = await signInWithToken(ctx.browser, `${ctx.node.url}/?workflow=${wf.id}`, ctx.adminToken);
    try {
      const p = await oldestLoaded(page);
      // Shown as of an older version (as if the page had missed someone's change): the move conflicts.
      await card(page, p.id).evaluate((el) => {
        (el as HTMLElement).dataset.version = '0';
      });
      await card(page, p.id).locator('button[data-to="doing"]').click();
      await page.locator('#message', { hasText: 'Conflict' }).waitFor();
      await cardIn(page, 'todo', p.id).waitFor();
      await expect(page.locator('.column[data-stage="todo"] .card').count()).resolves.toBe(50);
      await pageToEnd(page);
      await expect(page.locator('.column[data-stage="todo"] .card').count()).resolves.toBe(N);
    } finally {
      await context.close();
    }
  });
});
