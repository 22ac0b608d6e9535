import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../../scripts/topology/api.js';
import { createBoard } from '../../scripts/topology/fixtures.js';
import { freePort } from '../../scripts/topology/ports.js';
import { token } from '../../scripts/topology/tokens.js';
import type { FluxoNode } from '../../server/app.js';
import { FluxoError, FluxoHttp } from '../../shared/sdk/index.js';
import { eventually, startNode } from '../harness/node.js';

/** The SDK's HTTP helpers where the consumer test (sdk-package.test.ts) does not go: refreshed tokens and failures that are not Fluxo's answers. */

let node: FluxoNode;
let other: Server;
let otherUrl: string;

beforeAll(async () => {
  node = await startNode({ JWT_CLOCK_TOLERANCE_S: '0' });
  // Not Fluxo: a proxy's error pages, and a server that never answers.
  other = createServer((req, res) => {
    if (req.url === '/api/me') return res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>');
    if (req.url === '/api/workflows') return res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not found</h1>');
    if (req.url === '/api/processes/odd') return res.writeHead(200, { 'content-type': 'application/json' }).end('42');
    // /api/processes: no answer at all
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
});
afterAll(async () => {
  other?.closeAllConnections();
  other?.close();
  await node?.close();
});

async function failure(call: Promise<unknown>): Promise<FluxoError> {
  const err = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FluxoError);
  return err as FluxoError;
}

describe('SDK HTTP helpers', () => {
  it('asks getToken once for a request refused with token_expired, and sends it again', async () => {
    const short = await token({ sub: 'ada', tid: 'http', role: 'admin', ttlS: 1 });
    await eventually(async () => expect((await api(node.url, 'GET', '/api/me', { token: short })).status).toBe(401), 5000, 100);
    let asked = 0;
    const http = new FluxoHttp({
      url: node.url,
      token: short,
      getToken: async () => {
        asked++;
        return token({ sub: 'ada', tid: 'http', role: 'admin' });
      },
    });
    expect(await http.me()).toMatchObject({ userId: 'ada', tenant: 'http', role: 'admin' });
    expect(asked).toBe(1);
    // The fresh token is kept: no second refresh.
    await createBoard(node.url, await token({ sub: 'ada', tid: 'http', role: 'admin' }));
    expect(await http.listWorkflows()).toHaveLength(1);
    expect(asked).toBe(1);
  });

  it('keeps asking a token function after a refresh (as client.http follows its client’s token)', async () => {
    let current = await token({ sub: 'cy', tid: 'http', ttlS: 1 });
    await eventually(async () => expect((await api(node.url, 'GET', '/api/me', { token: current })).status).toBe(401), 5000, 100);
    const http = new FluxoHttp({
      url: node.url,
      token: () => current,
      getToken: async () => {
        current = await token({ sub: 'cy', tid: 'http' });
        return current;
      },
    });
    expect((await http.me()).userId).toBe('cy');
    // The function's next answer is what the next request carries.
    current = await token({ sub: 'di', tid: 'http' });
    expect((await http.me()).userId).toBe('di');
  });

  it('rejects without getToken on token_expired, with the code and status', async () => {
    const short = await token({ sub: 'bob', tid: 'http', ttlS: 1 });
    await eventually(async () => expect((await api(node.url, 'GET', '/api/me', { token: short })).status).toBe(401), 5000, 100);
    expect(await failure(new FluxoHttp({ url: node.url, token: short }).me())).toMatchObject({
      code: 'token_expired',
      status: 401,
      retryable: false,
    });
  });

  it('types answers that are not Fluxo’s by their status', async () => {
    const http = new FluxoHttp({ url: otherUrl, token: 'x' });
    expect(await failure(http.me())).toMatchObject({ code: 'internal', status: 502, retryable: true });
    expect(await failure(http.listWorkflows())).toMatchObject({ code: 'not_found', status: 404, retryable: false });
    expect(await failure(http.getProcess('odd'))).toMatchObject({ code: 'internal', status: 200, retryable: true });
  });

  it('rejects with timeout when no answer comes within timeoutMs, and with offline when nothing listens', async () => {
    const slow = new FluxoHttp({ url: otherUrl, token: 'x', timeoutMs: 200 });
    expect(await failure(slow.listProcesses())).toMatchObject({ code: 'timeout', status: undefined, retryable: true });
    const nowhere = new FluxoHttp({ url: `http://127.0.0.1:${await freePort()}`, token: 'x' });
    expect(await failure(nowhere.me())).toMatchObject({ code: 'offline', status: undefined, retryable: true });
  });
});
