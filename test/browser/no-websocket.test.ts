import { get as httpGet } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWebIfStale } from '../../scripts/build-web.js';
import { api } from '../../scripts/topology/api.js';
import { type ClusterHandle, requireBinaries, startCluster } from '../../scripts/topology/cluster.js';
import { createBoard, createProcess } from '../../scripts/topology/fixtures.js';
import { token } from '../../scripts/topology/tokens.js';
import type { Process, TransitionResult, Workflow } from '../../shared/protocol.js';
import { card, cardIn, expectNoDuplicates, launchChromium, screenshot, waitForBoard } from './harness.js';

/**
 * The board behind a proxy that cannot carry WebSocket (nginx/nginx.conf with every upgrade answered
 * 403): the SDK falls back to long-polling, whose same-origin handshake carries the session cookie
 * but no Origin header. The board must connect that way, move cards live, and — after the node
 * serving it is restarted — come back over long-polling and replay what it missed.
 */

interface Tab {
  context: BrowserContext;
  page: Page;
  /** WebSocket handshakes the page attempted, and frames any of them received. */
  ws: { attempts: number; frames: number };
  /** Socket.IO long-polling requests the page made. */
  polls: number;
  /** The headers of its first long-polling handshake (a GET without sid), as Chromium sent them. */
  handshake: Promise<Record<string, string>>;
}

let cluster: ClusterHandle;
let browser: Browser;
let wf: Workflow;
let cards: Process[];
let adminToken: string;
let ada: Tab;
let bob: Tab;

/** Signs in with the page's token form (POST /auth/session: the cookie session), watching its transports. */
async function open(url: string, tok: string): Promise<Tab> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  let handshakeSeen: (h: Record<string, string>) => void = () => {};
  const handshake = new Promise<Record<string, string>>((resolve) => {
    handshakeSeen = resolve;
  });
  const tab: Tab = { context, page, ws: { attempts: 0, frames: 0 }, polls: 0, handshake };
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  page.on('websocket', (ws) => {
    tab.ws.attempts++;
    ws.on('framereceived', () => tab.ws.frames++);
  });
  page.on('request', (req) => {
    if (!(req.url().includes('/socket.io/') && req.url().includes('transport=polling'))) return;
    tab.polls++;
    if (req.method() === 'GET' && !req.url().includes('sid=')) void req.allHeaders().then(handshakeSeen);
  });
  await page.goto(url);
  await page.locator('#token-form').waitFor();
  await page.fill('#token', tok);
  await page.click('#token-form button[type=submit]');
  await waitForBoard(page).catch(async (err: unknown) => {
    throw new Error(`the board did not connect: status "${await page.locator('#status').textContent()}" (${String(err)})`);
  });
  return tab;
}

/** The status a WebSocket upgrade request gets (101 when upgraded). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, {
      headers: {
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
      timeout: 5000,
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('no answer to the upgrade')));
    req.on('error', reject);
  });
}

async function servingNode(page: Page): Promise<string> {
  const text = (await page.locator('#status[data-state="connected"]').textContent({ timeout: 10_000 })) ?? '';
  const id = /Connected · node (\S+)/.exec(text)?.[1];
  if (!id) throw new Error(`no node in the status line: "${text}"`);
  return id;
}

beforeAll(async () => {
  requireBinaries();
  await buildWebIfStale();
  [cluster, browser] = await Promise.all([
    startCluster({ nodes: 2, nginx: true, nginxRefusesWebSocket: true, graceful: true, env: { LOG_LEVEL: 'warn' } }),
    launchChromium(),
  ]);
  const nginx = cluster.nginx;
  if (!nginx) throw new Error('nginx not started');
  // The proxy really refuses WebSocket.
  expect(await upgradeStatus(`${nginx.url}/socket.io/?EIO=4&transport=websocket`)).toBe(403);
  adminToken = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada Lovelace' });
  wf = await createBoard(nginx.url, adminToken);
  cards = [];
  for (const title of ['Write spec', 'Fix login', 'Ship it']) cards.push(await createProcess(nginx.url, adminToken, wf.id, title));
  const bobToken = await token({ sub: 'bob', tid: 'acme', role: 'editor', name: 'Bob Builder' });
  [ada, bob] = await Promise.all([open(nginx.url, adminToken), open(nginx.url, bobToken)]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
}, 30_000);

describe('the board behind a proxy without WebSocket', () => {
  it('connects over long-polling with the session cookie', async () => {
    for (const [who, tab] of [
      ['A', ada],
      ['B', bob],
    ] as const) {
      await expect(tab.page.locator('#status').getAttribute('data-state'), who).resolves.toBe('connected');
      expect(tab.ws.attempts, `${who} tried WebSocket first`).toBeGreaterThan(0);
      expect(tab.ws.frames, `${who}: no WebSocket ever carried a frame`).toBe(0);
      expect(tab.polls, `${who} long-polls`).toBeGreaterThan(0);
      // What the server's cookie rule reads: a same-origin GET carries the cookie but no Origin.
      const sent = await tab.handshake;
      expect(sent.cookie, who).toMatch(/fluxo_session=/);
      expect(sent.origin, who).toBeUndefined();
      expect(sent['sec-fetch-site'], who).toBe('same-origin');
      for (const c of cards) await cardIn(tab.page, 'todo', c.id).waitFor({ timeout: 5000 });
    }
    await screenshot(bob.page, 'no-websocket-b');
  });

  it("moves cards live: A clicks, B's board shows it", async () => {
    const p = cards[0]!;
    const started = Date.now();
    await card(ada.page, p.id).locator('button[data-to="doing"]').click();
    await cardIn(bob.page, 'doing', p.id).waitFor({ timeout: 3000 });
    console.log(`over long-polling, the move reached B ${Date.now() - started} ms after A's click`);
    await expect(bob.page.locator('#feed li').first().textContent()).resolves.toContain('todo → doing');
  });

  it('comes back over long-polling after its node is restarted, and replays what it missed', async () => {
    const p = cards[1]!;
    const before = await servingNode(bob.page);
    const index = cluster.nodes.findIndex((n) => n.nodeId === before);
    const victim = cluster.nodes[index];
    const other = cluster.nodes.find((n) => n.nodeId !== before);
    if (!victim || !other) throw new Error(`B's node ${before} is not one of ${cluster.nodes.map((n) => n.nodeId).join(', ')}`);
    // B cannot reach any node until the move below is committed: it can only get it by replay.
    await bob.page.route('**/socket.io/**', (route) => route.abort());
    await victim.stop(); // SIGTERM: the node drains (server:reconnect) and exits
    await bob.page.locator('#status:not([data-state="connected"])').waitFor({ timeout: 5000 });
    const moved = await api<{ data: TransitionResult }>(other.url, 'POST', `/api/processes/${p.id}/transition`, {
      token: adminToken,
      body: { to: 'doing', expectedVersion: p.version },
    });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    await cluster.restartNode(index + 1);
    await bob.page.unroute('**/socket.io/**');

    // Back (the SDK retries with back-off up to 10 s), still over long-polling, and caught up.
    await bob.page.locator('#status[data-state="connected"]').waitFor({ timeout: 20_000 });
    await cardIn(bob.page, 'doing', p.id).waitFor({ timeout: 5000 });
    await expect(bob.page.locator(`#feed li[data-event="${moved.body.data.event.id}"]`).count()).resolves.toBe(1);
    await expect(card(bob.page, p.id).getAttribute('data-version')).resolves.toBe(String(moved.body.data.process.version));
    expect(bob.ws.frames).toBe(0);
    await expectNoDuplicates(bob.page, 'B');

    // And live again: A (who came back too) moves another card.
    await ada.page.locator('#status[data-state="connected"]').waitFor({ timeout: 20_000 });
    const next = cards[2]!;
    await cardIn(ada.page, 'todo', next.id).waitFor();
    await card(ada.page, next.id).locator('button[data-to="doing"]').click();
    await cardIn(bob.page, 'doing', next.id).waitFor({ timeout: 5000 });
    await expectNoDuplicates(bob.page, 'B');
    await screenshot(bob.page, 'no-websocket-restarted-b');
  }, 60_000);
});
