import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import { connect, type FluxoClient, FluxoError, protocolMismatch } from '../../shared/sdk/index.js';
import { client, eventually, helloOf, startNode } from '../harness/node.js';

let node: FluxoNode;
const clients: FluxoClient[] = [];

/** What the node says as `hello.protocol` to each test user: a server of another version, or one older than versioning. */
const SAYS: Record<string, string | undefined> = {
  'from-the-future': '2.0',
  'newer-minor': '1.9',
  'not-a-version': 'one',
  'before-versions': undefined,
};

beforeAll(async () => {
  node = await startNode();
  node.io.use((socket, next) => {
    const user = socket.data.principal?.userId ?? '';
    if (Object.hasOwn(SAYS, user)) {
      const emit = socket.emit.bind(socket) as (event: string, ...args: unknown[]) => boolean;
      (socket as unknown as { emit: typeof emit }).emit = (event, ...args) => {
        if (event !== 'hello') return emit(event, ...args);
        const { protocol: _, ...rest } = args[0] as Record<string, unknown>;
        return emit('hello', SAYS[user] === undefined ? rest : { ...rest, protocol: SAYS[user] });
      };
    }
    next();
  });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await node?.close();
});

async function open(userId: string): Promise<FluxoClient> {
  const c = connect({ url: node.url, token: await token({ sub: userId, tid: 'acme' }), transports: ['websocket'] });
  clients.push(c);
  return c;
}

describe('protocol version', () => {
  it('is in every hello the server sends', async () => {
    const socket = await client(node.url, { token: await token({ sub: 'plain', tid: 'acme' }) });
    expect((await helloOf(socket)).protocol).toBe(PROTOCOL_VERSION);
    socket.close();
  });

  it('accepts any minor of its own major, and says which the server speaks', () => {
    expect(protocolMismatch('1.0', '1.0')).toBeNull();
    expect(protocolMismatch('1.12', '1.3')).toBeNull();
    expect(protocolMismatch(undefined, '1.0')).toBeNull();
    for (const other of ['2.0', '0.9', '1', '1.0.0', 'v1.0', 1, {}]) {
      expect(protocolMismatch(other, '1.0'), JSON.stringify(other)).toMatchObject({ code: 'protocol_mismatch', retryable: false });
    }
  });

  it('connects to the real server and to a newer minor; session.protocol is what the server said', async () => {
    const plain = await open('plain');
    const newer = await open('newer-minor');
    await Promise.all([plain.whenConnected(5000), newer.whenConnected(5000)]);
    expect(plain.session?.protocol).toBe(PROTOCOL_VERSION);
    expect(newer.session?.protocol).toBe('1.9');
  });

  it('connects to a server older than versioning (no protocol in hello), as 1.0', async () => {
    const old = await open('before-versions');
    await old.whenConnected(5000);
    expect(old.status).toMatchObject({ state: 'connected', protocol: null });
  });

  it.each([
    'from-the-future',
    'not-a-version',
  ])('gives up for good on another major (%s): offline, protocol_mismatch, reported, calls rejected', async (user) => {
    const c = await open(user);
    const errors: FluxoError[] = [];
    c.on('error', (e) => errors.push(e));
    const waiting = c.whenConnected().catch((e: unknown) => e);
    await eventually(() => expect(c.status).toMatchObject({ state: 'offline', reason: 'protocol_mismatch', retrying: false }));
    expect((c.status as { error?: FluxoError }).error).toMatchObject({ code: 'protocol_mismatch', retryable: false });
    expect(errors.map((e) => e.code)).toEqual(['protocol_mismatch']);
    expect(await waiting).toMatchObject({ code: 'offline', retryable: false, cause: { code: 'protocol_mismatch' } });
    expect(c.socket.connected).toBe(false);
    const err = await c.transition('p', 'doing').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FluxoError);
    expect(err).toMatchObject({ code: 'offline', cause: { code: 'protocol_mismatch' } });
  });
});
