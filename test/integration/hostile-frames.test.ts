import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CLUSTER_SECRET, type SpawnedNode, spawnNode } from '../../scripts/topology/cluster.js';
import { mintToken } from '../../server/auth/mint.js';

/**
 * Frames a careful client never sends, written by hand (socket.io-client would itself overflow its
 * stack encoding them), against a real node process: a crash shows as an exit, not a failed assert.
 */
let dir: string;
let node: SpawnedNode;
let token: string;

const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

/** An authenticated raw Socket.IO connection over WebSocket; returns a function that sends a frame and waits for its ack frame. */
async function rawSocket(): Promise<{ ask: (frame: string) => Promise<string>; close: () => void }> {
  const ws = new WebSocket(`${node.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const frames: string[] = [];
  const waiters: (() => void)[] = [];
  let closed = false;
  ws.on('close', () => {
    closed = true;
    for (const w of waiters.splice(0)) w();
  });
  ws.on('message', (data) => {
    const text = String(data);
    if (text === '2') return ws.send('3'); // ping → pong
    frames.push(text);
    for (const w of waiters.splice(0)) w();
  });
  const next = async (match: (f: string) => boolean): Promise<string> => {
    for (;;) {
      const i = frames.findIndex(match);
      if (i >= 0) return frames.splice(i, 1)[0]!;
      if (closed) throw new Error(`connection closed (node exit code ${node.proc.exitCode ?? node.proc.signalCode})`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await next((f) => f.startsWith('0{'));
  ws.send(`40${JSON.stringify({ token })}`);
  await next((f) => f.startsWith('40'));
  let ackId = 0;
  return {
    ask: (frame) => {
      const id = ++ackId;
      ws.send(`42${id}${frame}`);
      return next((f) => f.startsWith(`43${id}[`));
    },
    close: () => ws.close(),
  };
}

/** An authenticated Engine.IO long-polling session, spoken by hand. */
async function pollingSocket(): Promise<{ post: (body: string) => Promise<void>; acks: (n: number) => Promise<string[]> }> {
  const base = `${node.url}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text();
  const url = `${base}&sid=${(JSON.parse(open.slice(1)) as { sid: string }).sid}`;
  const post = async (body: string) => {
    expect((await fetch(url, { method: 'POST', body })).status).toBe(200);
  };
  await post(`40${JSON.stringify({ token })}`);
  const packets: string[] = [];
  const poll = async () => {
    for (const p of (await (await fetch(url)).text()).split('\x1e')) {
      if (p === '2') await post('3');
      else packets.push(p);
    }
  };
  while (!packets.some((p) => p.startsWith('40'))) await poll();
  return {
    post,
    acks: async (n) => {
      const acks = () => packets.filter((p) => p.startsWith('43'));
      while (acks().length < n) await poll();
      return acks();
    },
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fluxo-hostile-'));
  node = await spawnNode({}, join(dir, 'node.log'));
  token = await mintToken({ sub: 'eve', tid: 'hostile', role: 'viewer', ttlS: 3600, secret: CLUSTER_SECRET });
});
afterAll(async () => {
  await node?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function alive(): Promise<void> {
  expect(node.proc.exitCode).toBeNull();
  expect((await fetch(`${node.url}/health`)).status).toBe(200);
}

describe('hostile socket frames', () => {
  it('answers 10,000 nested arrays in subscribe and presence:update with payload_too_deep and stays up', async () => {
    const s = await rawSocket();
    try {
      for (const event of ['subscribe', 'presence:update', 'unsubscribe', 'process:transition', 'auth:refresh']) {
        const ack = await s.ask(`["${event}",${deep(10_000)}]`);
        expect(ack, event).toContain('"payload_too_deep"');
      }
      const nestedInObject = await s.ask(`["presence:update",{"room":"tenant","state":{"a":${deep(5_000)}}}]`);
      expect(nestedInObject).toContain('"payload_too_deep"');
      // The same socket still works.
      expect(await s.ask('["subscribe",{"room":"tenant"}]')).toContain('"data"');
    } finally {
      s.close();
    }
    await alive();
  });

  it('answers extra arguments before the ack with validation_failed, not a crash', async () => {
    const s = await rawSocket();
    try {
      expect(await s.ask('["subscribe",{"room":"tenant"},"x"]')).toContain('"validation_failed"');
      expect(await s.ask('["presence:update",{"room":"tenant","state":{}},1,2,3]')).toContain('"validation_failed"');
      expect(await s.ask('["subscribe"]')).toContain('"validation_failed"');
    } finally {
      s.close();
    }
    await alive();
  });

  it('answers the same over long-polling', async () => {
    const s = await pollingSocket();
    await s.post(`421["subscribe",${deep(10_000)}]`);
    expect((await s.acks(1))[0]).toContain('"payload_too_deep"');
    await alive();
  });

  it('handles the events of one socket in arrival order: subscribe then unsubscribe in one polling batch', async () => {
    for (let round = 0; round < 10; round++) {
      const s = await pollingSocket();
      // What python-socketio sends over long-polling: several packets in one POST (record separator).
      await s.post(
        ['421["subscribe",{"room":"tenant"}]', '422["unsubscribe",{"room":"tenant"}]', '423["unsubscribe",{"room":"tenant"}]'].join('\x1e'),
      );
      const acks = await s.acks(3);
      expect(
        acks.map((a) => a.slice(0, 3)),
        `round ${round}`,
      ).toEqual(['431', '432', '433']);
      expect(acks[0]).toContain('"data"');
      expect(acks[1]).toContain('"data"'); // the subscribe had run: it was subscribed
      expect(acks[2]).toContain('"invalid_room"'); // and the unsubscribe had run: it no longer was
    }
    await alive();
  });

  it('refuses a deeply nested HTTP body with 400 payload_too_deep', async () => {
    const admin = await mintToken({ sub: 'ada', tid: 'hostile', role: 'admin', ttlS: 3600, secret: CLUSTER_SECRET });
    const res = await fetch(`${node.url}/api/processes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: `{"workflowId":"w","title":"t","data":{"x":${deep(10_000)}}}`,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_deep');
    await alive();
  });
});
