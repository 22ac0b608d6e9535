import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import { connect } from 'node:net';
import type { Config } from '../../server/config/index.js';
import { toErrorBody } from '../../server/errors.js';
import { devLoginRoutes } from '../../server/http/dev-login.js';
import { errorResponse } from '../../server/http/respond.js';
import { Router } from '../../server/http/router.js';
import type { HttpRequest, HttpResponse } from '../../server/transport/uws.js';

/**
 * The node's origin with the dev-login routes in front, for as long as app.ts does not mount
 * them itself: /auth/dev-* are answered here, everything else (HTTP and the WebSocket upgrade) is
 * piped to the node untouched, so the page, its cookie and its socket share one origin.
 * Returns the node's own URL when the node already serves the routes.
 */
export async function withDevLogin(nodeUrl: string, config: Config): Promise<{ url: string; close(): Promise<void> }> {
  const probe = await fetch(`${nodeUrl}/auth/dev-users`);
  if (probe.status !== 404 || config.devLogin === false) return { url: nodeUrl, close: async () => {} };

  const router = new Router<HttpResponse>();
  devLoginRoutes(router, { config });
  const target = new URL(nodeUrl);

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const match = router.match(req.method ?? 'GET', url.pathname);
    if (match && 'route' in match) {
      let out: HttpResponse;
      try {
        out = await match.route.handler({ req: await toHttpRequest(req, url), params: match.params });
      } catch (err) {
        out = errorResponse(toErrorBody(err));
      }
      res.writeHead(out.status, Object.fromEntries((out.headers ?? []).map(([k, v]) => [k, v])));
      res.end(out.body ?? '');
      return;
    }
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  // WebSocket: replay the upgrade request to the node and splice the two sockets.
  server.on('upgrade', (req, socket, head) => {
    const up = connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function toHttpRequest(req: IncomingMessage, url: URL): Promise<HttpRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
  return {
    method: req.method ?? 'GET',
    path: url.pathname,
    query: url.searchParams,
    headers,
    peer: req.socket.remoteAddress ?? '',
    body: chunks.length ? Buffer.concat(chunks) : null,
  };
}
