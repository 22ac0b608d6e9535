import { readFile } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { TokenVerifier } from '../auth/types.js';
import type { Config } from '../config/index.js';
import { AppError } from '../errors.js';
import type { HttpResponse } from '../transport/uws.js';
import type { Router } from './router.js';

// From source and compiled alike: scripts/build-dist.ts copies web/dist into dist/ (dist/web/dist).
const WEB_DIST = resolve(import.meta.dirname, '../../web/dist');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
};

const FALLBACK = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Fluxo</title>
<body style="font-family:system-ui;max-width:40rem;margin:3rem auto;line-height:1.5">
<h1>Fluxo is running</h1>
<p>The dashboard has not been built (<code>npm run build</code>). The API is at <code>/api</code>,
Socket.IO at <code>/socket.io/</code>, health at <a href="/health">/health</a>.</p></body></html>`;

/** Serves the dashboard built into web/dist (issue: live dashboard); a short page until it exists. */
export function staticRoutes(router: Router<HttpResponse>, _deps: { config: Config; verifier: TokenVerifier }): void {
  const serve = async (path: string): Promise<HttpResponse> => {
    const file = normalize(join(WEB_DIST, path));
    // `${WEB_DIST}${sep}`: a sibling such as web/dist-old must not match either.
    if (!file.startsWith(`${WEB_DIST}${sep}`)) throw new AppError('not_found', 'No such file.');
    try {
      const body = await readFile(file);
      return { status: 200, headers: [['Content-Type', TYPES[extname(file)] ?? 'application/octet-stream']], body };
    } catch {
      if (path === 'index.html') return { status: 200, headers: [['Content-Type', TYPES['.html']!]], body: FALLBACK };
      throw new AppError('not_found', 'No such file.');
    }
  };
  router
    .add('GET', '/', () => serve('index.html'))
    .add('GET', '/assets/:file', ({ params }) => serve(`assets/${params.file}`))
    // Linked from index.html: without an icon the browser asks for /favicon.ico and logs its 404.
    .add('GET', '/favicon.svg', () => serve('favicon.svg'));
}
