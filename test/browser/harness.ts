import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { expect } from 'vitest';

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

/** A fresh browser context (own cookies) signed in with the page's token form (POST /auth/session). */
export async function signInWithToken(browser: Browser, url: string, token: string): Promise<SignedIn> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(url);
  await page.locator('#token-form').waitFor();
  await page.fill('#token', token);
  await page.click('#token-form button[type=submit]');
  await waitForBoard(page);
  return { context, page };
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
