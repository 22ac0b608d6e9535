import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildWebIfStale } from '../../scripts/build-web.js';
import { api } from '../../scripts/topology/api.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import type { Process, Workflow } from '../../shared/protocol.js';
import { internalRoom, roomOf } from '../../shared/rooms.js';
import { eventually, startNode } from '../harness/node.js';
import { cardIn, launchChromium, screenshot, signInOnPage } from './harness.js';

/**
 * Picking workflows in quick succession (ArrowDown, ArrowDown on the picker) ends on the last one
 * picked: its columns, its room, its presence — nothing left of the one skipped over.
 */

const LIMITS = 'process:transition=1000/1,handshake=1000/1,subscribe=1000/1,http:write=1000/1,http:read=1000/1';

let node: FluxoNode;
let browser: Browser;
let adminToken: string;
const workflows: Workflow[] = [];

beforeAll(async () => {
  await buildWebIfStale();
  [node, browser] = await Promise.all([startNode({ RATE_LIMITS: LIMITS, NODE_ID: 'node-switch' }), launchChromium()]);
  adminToken = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada Lovelace' });
  // Stages of their own, so a board mixing two workflows shows it.
  for (const [name, stages] of [
    ['A onboarding', ['lead', 'live']],
    ['B triage', ['new', 'confirmed', 'fixed']],
    ['C support', ['open', 'waiting', 'solved', 'closed']],
  ] as const) {
    const transitions = Object.fromEntries(stages.slice(0, -1).map((s, i) => [s, [stages[i + 1]!]]));
    const res = await api<{ data: Workflow }>(node.url, 'POST', '/api/workflows', {
      token: adminToken,
      body: { name, stages, transitions },
    });
    if (res.status !== 201) throw new Error(`createWorkflow: ${res.status} ${JSON.stringify(res.body)}`);
    workflows.push(res.body.data);
  }
});
afterAll(async () => {
  await browser?.close();
  await node?.close();
});

/** The workflow rooms the user's sockets are in on the node. */
async function workflowRoomsOf(userId: string): Promise<string[]> {
  const sockets = (await node.io.fetchSockets()).filter((s) => s.data.principal.userId === userId);
  return sockets.flatMap((s) => [...s.rooms].filter((r) => r.includes(':workflow:'))).sort();
}

it('two quick picks in the workflow picker end on the last one: its columns only, and only its room', async () => {
  const [first, , last] = workflows as [Workflow, Workflow, Workflow];
  const alan = await token({ sub: 'alan', tid: 'acme', role: 'editor', name: 'Alan Turing' });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  // The server is slow to confirm leaving a room: both picks happen while the first board closes.
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const unsubscribeAcks = new Set<string>();
  let answered: () => void = () => {};
  const leftRoom = new Promise<void>((resolve) => {
    answered = resolve;
  });
  await page.routeWebSocket(/\/socket\.io\//, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage(async (message) => {
      // Socket.IO frames: `42<ack id>["unsubscribe",…]`, answered by `43<ack id>[…]`.
      const ack = typeof message === 'string' ? /^42(\d+)\["unsubscribe"/.exec(message)?.[1] : undefined;
      if (ack) {
        unsubscribeAcks.add(ack);
        await released;
      }
      server.send(message);
    });
    server.onMessage((message) => {
      ws.send(message);
      const ack = typeof message === 'string' ? /^43(\d+)\[/.exec(message)?.[1] : undefined;
      if (ack && unsubscribeAcks.has(ack)) answered();
    });
  });
  try {
    await page.goto(`${node.url}/?workflow=${first.id}`);
    await signInOnPage(page, alan);
    await expect(page.locator('#workflow').inputValue()).resolves.toBe(first.id);
    await page.locator('#workflow').focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    await expect(page.locator('#workflow').inputValue()).resolves.toBe(last.id);
    release();
    await leftRoom;
    // A live event of the last workflow, sent after the first board's room was left: once the page
    // shows it, whatever the closing board's answer set going has run.
    const res = await api<{ data: Process }>(node.url, 'POST', '/api/processes', {
      token: adminToken,
      body: { workflowId: last.id, title: 'After the switch' },
    });
    await cardIn(page, last.stages[0]!, res.body.data.id).waitFor({ timeout: 10_000 });
    await expect(page.locator('#board').getAttribute('aria-label')).resolves.toBe(`Board ${last.name}`);
    await expect(page.locator('.column').evaluateAll((cs) => cs.map((c) => (c as HTMLElement).dataset.stage))).resolves.toEqual(
      last.stages,
    );
    // The board skipped over was closed: the page left its room, and with it its presence there.
    await eventually(async () => expect(await workflowRoomsOf('alan')).toEqual([internalRoom('acme', roomOf.workflow(last.id))]), 10_000);
    await screenshot(page, 'workflow-switch');
  } finally {
    await context.close();
  }
});
