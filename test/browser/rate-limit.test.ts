import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildWebIfStale } from '../../scripts/build-web.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { startNode } from '../harness/node.js';
import { card, cardIn, launchChromium, screenshot, signInWithToken } from './harness.js';

let node: FluxoNode;
let browser: Browser;

beforeAll(async () => {
  await buildWebIfStale();
  // One transition per minute per user: the second click is refused with 429.
  [node, browser] = await Promise.all([startNode({ RATE_LIMITS: 'process:transition=1/60,handshake=1000/1' }), launchChromium()]);
});
afterAll(async () => {
  await browser?.close();
  await node?.close();
});

it('tells the user to wait when moves are rate limited', async () => {
  const admin = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada Lovelace' });
  const wf = await createBoard(node.url, admin);
  const p = await createProcess(node.url, admin, wf.id, 'Hot potato');
  const { context, page } = await signInWithToken(browser, node.url, admin);
  try {
    await card(page, p.id).locator('button[data-to="doing"]').click();
    await cardIn(page, 'doing', p.id).waitFor({ timeout: 2000 });
    await card(page, p.id).locator('button[data-to="todo"]').click();
    const message = page.locator('#message[role="alert"]');
    await message.waitFor();
    await expect(message.textContent()).resolves.toMatch(/Too many moves: wait \d+ s/);
    await cardIn(page, 'doing', p.id).waitFor();
    await screenshot(page, 'rate-limited');
  } finally {
    await context.close();
  }
});
