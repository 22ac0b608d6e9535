import type { HttpRequest } from '../transport/uws.js';

export interface RouteContext {
  req: HttpRequest;
  params: Record<string, string>;
}

export interface Route<R> {
  method: string;
  /** e.g. `/api/processes/:id/transition`; also the metrics label. */
  pattern: string;
  handler: (ctx: RouteContext) => Promise<R>;
}

export type Match<R> = { route: Route<R>; params: Record<string, string> } | { methodNotAllowed: true } | null;

/** A small path router: literal segments and `:param` segments, nothing else. */
export class Router<R> {
  private readonly routes: { route: Route<R>; parts: string[] }[] = [];

  add(method: string, pattern: string, handler: Route<R>['handler']): this {
    this.routes.push({ route: { method, pattern, handler }, parts: pattern.split('/').filter(Boolean) });
    return this;
  }

  match(method: string, path: string): Match<R> {
    const segs = path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const { route, parts } of this.routes) {
      if (parts.length !== segs.length) continue;
      const params: Record<string, string> = Object.create(null);
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const part = parts[i]!;
        const seg = segs[i]!;
        if (part.startsWith(':')) {
          try {
            params[part.slice(1)] = decodeURIComponent(seg);
          } catch {
            ok = false;
          }
        } else ok = part === seg;
      }
      if (!ok) continue;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
      pathMatched = true;
    }
    return pathMatched ? { methodNotAllowed: true } : null;
  }
}
