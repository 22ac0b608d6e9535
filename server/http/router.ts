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
  private readonly table: { route: Route<R>; parts: string[] }[] = [];

  add(method: string, pattern: string, handler: Route<R>['handler']): this {
    this.table.push({ route: { method, pattern, handler }, parts: pattern.split('/').filter(Boolean) });
    return this;
  }

  match(method: string, path: string): Match<R> {
    const segs = path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const { route, parts } of this.table) {
      const params = matchParts(parts, segs);
      if (!params) continue;
      if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params };
      pathMatched = true;
    }
    return pathMatched ? { methodNotAllowed: true } : null;
  }

  /** Every route, in the order added: what the OpenAPI document (openapi.ts) must describe. */
  routes(): { method: string; pattern: string }[] {
    return this.table.map(({ route }) => ({ method: route.method, pattern: route.pattern }));
  }

  /** The methods the routes of `path` answer, and the first one's pattern (the metrics label); null when none has it. */
  methods(path: string): { pattern: string; methods: string[] } | null {
    const segs = path.split('/').filter(Boolean);
    const found = this.table.filter(({ parts }) => matchParts(parts, segs) !== null);
    if (found.length === 0) return null;
    return { pattern: found[0]!.route.pattern, methods: [...new Set(found.map(({ route }) => route.method))] };
  }
}

/** The `:param`s of a path whose segments match a pattern's parts; null when they do not. */
function matchParts(parts: string[], segs: string[]): Record<string, string> | null {
  if (parts.length !== segs.length) return null;
  const params: Record<string, string> = Object.create(null);
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const seg = segs[i]!;
    if (part.startsWith(':')) {
      try {
        params[part.slice(1)] = decodeURIComponent(seg);
      } catch {
        return null;
      }
    } else if (part !== seg) return null;
  }
  return params;
}
