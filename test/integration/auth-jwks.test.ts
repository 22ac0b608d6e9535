import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../../server/auth/verifier.js';
import type { AppError } from '../../server/errors.js';
import { rejection } from '../harness/rejections.js';

// The token verifier against a JWKS URL: a local HTTP server stands in for the identity provider
// (a server, so not in the unit tier; the verifier with secrets and in-memory key sets is
// test/unit/auth-verifier.test.ts; a node behind a JWKS outage is test/integration/auth.test.ts).

const now = () => Math.floor(Date.now() / 1000);
const good: JWTPayload = { sub: 'u1', tid: 'acme', role: 'editor', exp: now() + 600 };

describe('createTokenVerifier with a JWKS URL', () => {
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let server: Server;
  let jwksUrl: string;

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256', { extractable: true });
    const jwks = { keys: [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa', alg: 'RS256', use: 'sig' }] };
    server = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('fetches keys from a JWKS URL', async () => {
    const v = createTokenVerifier({ jwksUrl, clockToleranceS: 0 });
    const rs = await new SignJWT(good).setProtectedHeader({ alg: 'RS256', kid: 'rsa' }).sign(rsa.privateKey);
    await expect(v.verify(rs)).resolves.toMatchObject({ tenant: 'acme' });
  });

  it('refuses a token whose kid the JWKS URL does not hold with token_invalid (the provider is up)', async () => {
    const v = createTokenVerifier({ jwksUrl, clockToleranceS: 0 });
    const stranger = await generateKeyPair('RS256');
    const unknownKid = await new SignJWT(good).setProtectedHeader({ alg: 'RS256', kid: 'nope' }).sign(stranger.privateKey);
    expect((await rejection(v.verify(unknownKid))).code).toBe('token_invalid');
    const wrongKey = await new SignJWT(good).setProtectedHeader({ alg: 'RS256', kid: 'rsa' }).sign(stranger.privateKey);
    expect((await rejection(v.verify(wrongKey))).code).toBe('token_invalid');
  });
});

describe('an identity provider that is down', () => {
  let rs: string;
  beforeAll(async () => {
    const { privateKey } = await generateKeyPair('RS256');
    rs = await new SignJWT(good).setProtectedHeader({ alg: 'RS256', kid: 'rsa' }).sign(privateKey);
  });

  /** A JWKS endpoint behaving as `handle` says; `url` and `close`. */
  async function idp(handle: (req: IncomingMessage, res: ServerResponse) => void) {
    const server = createServer(handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    return {
      url,
      close: () =>
        new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
    };
  }

  async function outage(url: string): Promise<{ err: AppError; reported: unknown[] }> {
    const reported: unknown[] = [];
    const v = createTokenVerifier({ jwksUrl: url, clockToleranceS: 0, jwksTimeoutMs: 300, onKeysUnavailable: (e) => reported.push(e) });
    return { err: await rejection(v.verify(rs)), reported };
  }

  it.each([
    ['answers 503', (_req: IncomingMessage, res: ServerResponse) => res.writeHead(503).end('down')],
    ['answers something that is not JSON', (_req: IncomingMessage, res: ServerResponse) => res.end('<html>maintenance</html>')],
    ['answers JSON that is not a key set', (_req: IncomingMessage, res: ServerResponse) => res.end('{"keys":"none"}')],
    ['never answers', () => {}],
    ['drops the connection', (req: IncomingMessage) => req.socket.destroy()],
  ])('refuses with auth_unavailable (503, retryable), not token_invalid, when the JWKS URL %s', async (_what, handle) => {
    const server = await idp(handle);
    try {
      const { err, reported } = await outage(server.url);
      expect(err.code).toBe('auth_unavailable');
      expect(err.status).toBe(503);
      expect(reported).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('refuses with auth_unavailable when nothing listens at the JWKS URL', async () => {
    const server = await idp(() => {});
    await server.close();
    expect((await outage(server.url)).err.code).toBe('auth_unavailable');
  });
});
