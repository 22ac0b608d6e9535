import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWebIfStale } from '../../scripts/build-web.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { Process, Workflow } from '../../shared/protocol.js';
import { DEV_JWT_SECRET, startNode } from '../harness/node.js';
import { withDevLogin } from './dev-login-proxy.js';
import { card, cardIn, launchChromium, screenshot, waitForBoard } from './harness.js';

let node: FluxoNode;
let browser: Browser;
let front: { url: string; close(): Promise<void> };
let wf: Workflow;
let p: Process;

beforeAll(async () => {
  await buildWebIfStale();
  // Demo sign-in is on only with the built-in development secret (no JWT_SECRET), as after `npm start`.
  [node, browser] = await Promise.all([
    startNode({ JWT_SECRET: '', RATE_LIMITS: 'handshake=1000/1', NODE_ID: 'node-dev' }),
    launchChromium(),
  ]);
  front = await withDevLogin(node.url, node.config);
  const admin = await token({ sub: 'ada', tid: 'acme', role: 'admin', secret: DEV_JWT_SECRET });
  wf = await createBoard(node.url, admin);
  p = await createProcess(node.url, admin, wf.id, 'Demo card');
});
afterAll(async () => {
  await browser?.close();
  await front?.close();
  await node?.close();
});

describe('demo sign-in in a real browser', () => {
  it('picks a demo user, gets an httpOnly session cookie, sees the live board and signs out', async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    try {
      await page.goto(front.url);
      await page.locator('#dev-login button[data-user="grace"]').waitFor();
      await screenshot(page, 'dev-login-picker');
      await page.click('#dev-login button[data-user="grace"]');
      await waitForBoard(page);
      await expect(page.locator('#me').textContent()).resolves.toContain('Grace Hopper');
      const cookie = (await context.cookies()).find((c) => c.name === node.config.cookieName);
      expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
      await card(page, p.id).locator('button[data-to="doing"]').click();
      await cardIn(page, 'doing', p.id).waitFor({ timeout: 2000 });
      await screenshot(page, 'dev-login-board');
      await page.click('#logout');
      await page.locator('#dev-login button[data-user="grace"]').waitFor();
    } finally {
      await context.close();
    }
  });
});
