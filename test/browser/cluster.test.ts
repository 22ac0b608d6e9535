import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWebIfStale } from '../../scripts/build-web.js';
import { api } from '../../scripts/topology/api.js';
import { type ClusterHandle, requireBinaries, startCluster } from '../../scripts/topology/cluster.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { Process, TransitionResult, Workflow } from '../../shared/protocol.js';
import { card, cardIn, expectNoDuplicates, launchChromium, type SignedIn, screenshot, signInWithToken } from './harness.js';

/**
 * The dashboard in the real topology: 3 Fluxo nodes + Redis + Postgres primary and replica, nginx
 * (ip_hash) in front. Both browser contexts come from 127.0.0.1, so ip_hash puts them on one node;
 * that node is kill -9ed and B's page must come back through nginx to a survivor and catch up.
 */

let cluster: ClusterHandle;
let browser: Browser;
let wf: Workflow;
let cards: Process[];
let ada: SignedIn;
let bob: SignedIn;
let adminToken: string;

/** The node id the page's status line names, or null when it is not connected. */
async function servingNode(page: Page): Promise<string | null> {
  const text = (await page.locator('#status[data-state="connected"]').textContent({ timeout: 10_000 })) ?? '';
  return /Connected · node (\S+)/.exec(text)?.[1] ?? null;
}

interface StatusChange {
  state: string;
  text: string;
  at: number;
}

/** Records every change of the status line (state, text, wall-clock ms) in `window.statusLog`. */
async function recordStatus(page: Page): Promise<() => Promise<StatusChange[]>> {
  await page.evaluate(() => {
    const w = window as unknown as { statusLog: StatusChange[] };
    w.statusLog = [];
    const el = document.querySelector('#status') as HTMLElement;
    const log = () => w.statusLog.push({ state: el.dataset.state ?? '', text: el.textContent ?? '', at: Date.now() });
    new MutationObserver(log).observe(el, { attributes: true, childList: true, characterData: true, subtree: true });
  });
  return () => page.evaluate(() => (window as unknown as { statusLog: StatusChange[] }).statusLog);
}

beforeAll(async () => {
  requireBinaries();
  await buildWebIfStale();
  [cluster, browser] = await Promise.all([
    startCluster({ nodes: 3, nginx: true, replica: true, env: { LOG_LEVEL: 'warn' } }),
    launchChromium(),
  ]);
  const nginx = cluster.nginx;
  if (!nginx) throw new Error('nginx not started');
  adminToken = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada Lovelace' });
  wf = await createBoard(nginx.url, adminToken);
  cards = [];
  for (const title of ['Write spec', 'Fix login']) cards.push(await createProcess(nginx.url, adminToken, wf.id, title));
  const bobToken = await token({ sub: 'bob', tid: 'acme', role: 'editor', name: 'Bob Builder' });
  // What the page's token form sends (same-origin fetch): say plainly if nginx's headers make it cross-site.
  const session = await fetch(`${nginx.url}/auth/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: nginx.url, 'sec-fetch-site': 'same-origin' },
    body: JSON.stringify({ token: bobToken }),
  });
  if (session.status !== 200)
    throw new Error(`page sign-in through nginx (${nginx.url}) refused: ${session.status} ${await session.text()}`);
  [ada, bob] = await Promise.all([signInWithToken(browser, nginx.url, adminToken), signInWithToken(browser, nginx.url, bobToken)]);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
}, 30_000);

describe('dashboard in a cluster behind nginx', () => {
  it("B's page survives a kill -9 of its node: it reconnects through nginx to a survivor and catches up, without duplicates", async () => {
    const p = cards[0]!;
    for (const page of [ada.page, bob.page]) for (const c of cards) await cardIn(page, 'todo', c.id).waitFor({ timeout: 5000 });

    const before = await servingNode(bob.page);
    const adaNode = await servingNode(ada.page);
    console.log(`before: A on ${adaNode}, B on ${before} (ip_hash, both from 127.0.0.1)`);
    const victim = cluster.nodes.find((n) => n.nodeId === before);
    if (!victim) throw new Error(`B's status line names ${before}, not one of ${cluster.nodes.map((n) => n.nodeId).join(', ')}`);
    const survivor = cluster.nodes.find((n) => n.nodeId !== victim.nodeId);
    if (!survivor) throw new Error('no surviving node');
    await screenshot(ada.page, 'cluster-before-a');
    await screenshot(bob.page, 'cluster-before-b');

    const statusLog = await recordStatus(bob.page);
    const killedAt = Date.now();
    await victim.kill9();
    // While B is away (its first retry waits 125–250 ms), move the card through a surviving node.
    const moved = await api<{ data: TransitionResult }>(survivor.url, 'POST', `/api/processes/${p.id}/transition`, {
      token: adminToken,
      body: { to: 'doing', expectedVersion: p.version },
    });
    const committedAt = Date.now();
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    const eventId = moved.body.data.event.id;

    // B reconnects through nginx, to a node that is not the dead one.
    await bob.page.waitForFunction(
      (dead) => {
        const el = document.querySelector('#status') as HTMLElement;
        return el.dataset.state === 'connected' && !(el.textContent ?? '').endsWith(`node ${dead}`);
      },
      victim.nodeId,
      { timeout: 20_000 },
    );
    const after = await servingNode(bob.page);
    const log = await statusLog();
    const reconnectedAt = log.find((s) => s.state === 'connected')?.at ?? Number.NaN;
    console.log(
      `B: ${before} → ${after}; move committed ${committedAt - killedAt} ms after the kill, B connected again ${reconnectedAt - killedAt} ms after; status: ${log.map((s) => `${s.at - killedAt}ms ${s.text}`).join(' | ')}`,
    );
    expect(after).not.toBeNull();
    expect(after).not.toBe(victim.nodeId);
    expect(
      log.some((s) => s.state !== 'connected'),
      'B never left the connected state',
    ).toBe(true);
    // The move was committed while B was disconnected: B gets it by replay, not live.
    expect(committedAt).toBeLessThan(reconnectedAt);

    // B catches up: the card is in its new column, once, and the feed lists the move once.
    await cardIn(bob.page, 'doing', p.id)
      .waitFor({ timeout: 5000 })
      .catch(async () => {
        const feed = await bob.page.locator('#feed li').allTextContents();
        throw new Error(
          `B reconnected to ${after} but never caught up on event ${eventId} (committed while it was away): card ${p.id} is not in "doing"; B's feed: ${JSON.stringify(feed)}`,
        );
      });
    await expect(card(bob.page, p.id).count()).resolves.toBe(1);
    await expect(card(bob.page, p.id).getAttribute('data-version')).resolves.toBe(String(moved.body.data.process.version));
    await expect(bob.page.locator(`#feed li[data-event="${eventId}"]`).count()).resolves.toBe(1);
    await expect(bob.page.locator(`#feed li[data-event="${eventId}"]`).textContent()).resolves.toContain('todo → doing');
    await expectNoDuplicates(bob.page, 'B');

    // A (on the same dead node) comes back as well and agrees.
    await cardIn(ada.page, 'doing', p.id).waitFor({ timeout: 20_000 });
    await expect(ada.page.locator('#status').getAttribute('data-state')).resolves.toBe('connected');
    await expectNoDuplicates(ada.page, 'A');

    // Still live after the failover: a move on the new node reaches B once.
    const next = cards[1]!;
    const live = await api<{ data: TransitionResult }>(cluster.nginx!.url, 'POST', `/api/processes/${next.id}/transition`, {
      token: adminToken,
      body: { to: 'doing' },
    });
    expect(live.status, JSON.stringify(live.body)).toBe(200);
    await cardIn(bob.page, 'doing', next.id).waitFor({ timeout: 2000 });
    await expect(bob.page.locator(`#feed li[data-event="${live.body.data.event.id}"]`).count()).resolves.toBe(1);
    await expectNoDuplicates(bob.page, 'B');

    await screenshot(ada.page, 'cluster-after-a');
    await screenshot(bob.page, 'cluster-after-b');
  }, 60_000);
});
