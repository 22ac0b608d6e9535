import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Browser, type BrowserContext, type BrowserContextOptions, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import { buildWebIfStale } from '../../scripts/build-web.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { startNode } from '../harness/node.js';

/** Screenshots land here (git-ignored; CI keeps it as an artifact). */
export const ARTIFACTS = resolve(import.meta.dirname, '../artifacts');

/** Debian's chromium, headless; the network flags keep it from calling out (see ENVIRONMENT.md). */
export function launchChromium(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: resolve(ARTIFACTS, `${name}.png`), fullPage: true });
}

export interface SignedIn {
  context: BrowserContext;
  page: Page;
}

/**
 * A fresh browser context (own cookies) signed in with the page's token form (POST /auth/session);
 * 1400 × 900 unless `options` say otherwise (a phone: viewport, isMobile, hasTouch).
 */
export async function signInWithToken(
  browser: Browser,
  url: string,
  token: string,
  options: BrowserContextOptions = { viewport: { width: 1400, height: 900 } },
): Promise<SignedIn> {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(url);
  await signInOnPage(page, token);
  return { context, page };
}

/** Signs in through the token form of a page showing the sign-in prompt, and waits for the board. */
export async function signInOnPage(page: Page, token: string): Promise<void> {
  await page.locator('#token-form').waitFor();
  await page.fill('#token', token);
  await page.click('#token-form button[type=submit]');
  await waitForBoard(page);
}

/** The page shows the sign-in prompt, not a board. */
export async function waitForSignIn(page: Page): Promise<void> {
  await page.locator('#signin:not([hidden]) #token-form').waitFor();
  await page.locator('#app[hidden]').waitFor({ state: 'attached' });
  await page.locator('#status[data-state="signed-out"]').waitFor();
}

/**
 * What a user with the developer tools open would see go wrong: console errors (a failed load is
 * one: "Failed to load resource … 401"), uncaught exceptions, and HTTP answers ≥ 400.
 */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => problems.push(`exception: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()} ${res.request().method()} ${res.url()}`);
  });
  return problems;
}

/** The board is rendered and the socket is connected. */
export async function waitForBoard(page: Page): Promise<void> {
  await page.locator('body[data-ready="true"]').waitFor();
  await page.locator('#status[data-state="connected"]').waitFor();
}

export function card(page: Page, processId: string) {
  return page.locator(`[data-process="${processId}"]`);
}

export function cardIn(page: Page, stage: string, processId: string) {
  return page.locator(`.column[data-stage="${stage}"] [data-process="${processId}"]`);
}

/** Feed entries and board cards each appear once. */
export async function expectNoDuplicates(page: Page, who: string): Promise<void> {
  const eventIds = await page.locator('#feed li').evaluateAll((lis) => lis.map((li) => (li as HTMLElement).dataset.event ?? ''));
  expect(new Set(eventIds).size, `${who}: duplicate feed entries ${JSON.stringify(eventIds)}`).toBe(eventIds.length);
  const cardIds = await page
    .locator('.card[data-process]')
    .evaluateAll((els) => els.map((el) => (el as HTMLElement).dataset.process ?? ''));
  expect(new Set(cardIds).size, `${who}: duplicate cards ${JSON.stringify(cardIds)}`).toBe(cardIds.length);
}

/** What `boardNode` starts for a test file: a node, a Chromium, and tokens of acme's ada (admin) and bob (editor). */
export interface BoardNode {
  node: FluxoNode;
  browser: Browser;
  adminToken: string;
  bobToken: string;
}

/**
 * Starts a node (with `env`) and Chromium for the test file, before its tests, and closes both after
 * them; the board is built first when its sources changed. Read the fields inside the tests.
 */
export function boardNode(env: Record<string, string>): BoardNode {
  const ctx = {} as BoardNode;
  beforeAll(async () => {
    await buildWebIfStale();
    [ctx.node, ctx.browser] = await Promise.all([startNode(env), launchChromium()]);
    ctx.adminToken = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada Lovelace' });
    ctx.bobToken = await token({ sub: 'bob', tid: 'acme', role: 'editor', name: 'Bob Builder' });
  });
  afterAll(async () => {
    await ctx.browser?.close();
    await ctx.node?.close();
  });
  return ctx;
}
