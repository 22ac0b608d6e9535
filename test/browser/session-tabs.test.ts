import { expect, it } from 'vitest';
import { token } from '../../scripts/topology/tokens.js';
import { eventually } from '../harness/node.js';
import { boardNode, signInOnPage, waitForBoard, waitForSignIn } from './harness.js';

/**
 * Two tabs of one browser share the session cookie, but only the tab that signed in can renew it
 * (demo sign-in keeps how in that tab's sessionStorage). When the first token expires, a tab that
 * cannot renew carries on with the cookie another tab renewed — and goes to sign-in when nobody did.
 */

const ctx = boardNode({ RATE_LIMITS: 'handshake=1000/1,subscribe=1000/1,http:read=1000/1,auth=1000/1' });

/** The `exp` of the tokens this user's sockets were verified with, as the node sees them. */
async function socketExps(userId: string): Promise<number[]> {
  const sockets = await ctx.node.io.fetchSockets();
  return sockets.filter((s) => s.data.principal?.userId === userId).map((s) => s.data.principal.exp);
}

it('a second tab carries on with the session cookie another tab renewed, when its token expires', async () => {
  const short = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada Lovelace', ttlS: 6 });
  const { exp: shortExp } = JSON.parse(Buffer.from(short.split('.')[1]!, 'base64url').toString()) as { exp: number };
  const context = await ctx.browser.newContext({ viewport: { width: 1400, height: 900 } });
  try {
    const first = await context.newPage();
    await first.goto(ctx.node.url);
    await signInOnPage(first, short);
    const second = await context.newPage();
    await second.goto(ctx.node.url);
    await waitForBoard(second);

    // The first tab renews the cookie, as its refresh would; the second's socket keeps the old token.
    const fresh = await token({ sub: 'ada', tid: 'acme', role: 'admin', name: 'Ada Lovelace', ttlS: 600 });
    const renewed = await first.evaluate(async (t) => {
      const res = await fetch('/auth/session', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: t }),
      });
      return res.status;
    }, fresh);
    expect(renewed).toBe(200);

    // Past the short token's expiry (and the server's clock tolerance), every socket of ada is on a
    // later token — the second tab's too — and that tab shows its board, not the sign-in prompt.
    await eventually(async () => {
      const exps = await socketExps('ada');
      expect(exps.length).toBeGreaterThanOrEqual(1);
      expect(exps.every((e) => e > shortExp)).toBe(true);
      expect(Date.now()).toBeGreaterThan(shortExp * 1000);
    }, 30_000);
    await waitForBoard(second);
    expect(await second.locator('#signin').isHidden()).toBe(true);
  } finally {
    await context.close();
  }
});

it('a tab whose token expired goes to sign-in when nobody renewed the cookie', async () => {
  const short = await token({ sub: 'bob', tid: 'acme', role: 'editor', name: 'Bob Builder', ttlS: 4 });
  const context = await ctx.browser.newContext({ viewport: { width: 1400, height: 900 } });
  try {
    const page = await context.newPage();
    await page.goto(ctx.node.url);
    await signInOnPage(page, short);
    await waitForSignIn(page);
    expect(await page.locator('#signin').innerText()).toMatch(/expired/i);
  } finally {
    await context.close();
  }
});
