import type { Metrics } from '../ops/metrics.js';
import type { HttpResponse } from '../transport/uws.js';
import { openApiDocument } from './openapi.js';
import { ROUTE_DOCS } from './openapi-routes.js';
import { errorResponse, json } from './respond.js';
import type { Router } from './router.js';

export interface Readiness {
  /** Null when ready, else why not. */
  check(): Promise<string | null>;
}

export function opsRoutes(router: Router<HttpResponse>, deps: { nodeId: string; metrics: Metrics; readiness: Readiness }): void {
  // Built on first request, when every module has added its routes; they do not change after.
  let openApi: HttpResponse | undefined;
  router
    .add('GET', '/health', async () => json(200, { status: 'ok', node: deps.nodeId }))
    .add('GET', '/ready', async () => {
      const reason = await deps.readiness.check();
      if (reason) return errorResponse({ code: 'not_ready', message: reason });
      return json(200, { status: 'ready', node: deps.nodeId });
    })
    .add('GET', '/metrics', async () => ({
      status: 200,
      headers: [['Content-Type', deps.metrics.registry.contentType]],
      body: await deps.metrics.registry.metrics(),
    }))
    .add('GET', '/openapi.json', async () => {
      openApi ??= json(200, openApiDocument(router.routes(), ROUTE_DOCS));
      return openApi;
    });
}
