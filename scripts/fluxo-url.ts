/**
 * Where the tools that talk to a running node (`npm run seed`, `npm run loadtest`) find it: `--url`,
 * else the FLUXO_URL environment variable, else http://localhost:8080 (what `npm start` listens on).
 */
export const DEFAULT_FLUXO_URL = 'http://localhost:8080';

export function fluxoUrl(flag?: string): string {
  return (flag || process.env.FLUXO_URL || DEFAULT_FLUXO_URL).replace(/\/+$/, '');
}

/** Thrown when nothing (or something that is not Fluxo) answers at the URL. */
export class UnreachableError extends Error {
  /** sysexits EX_UNAVAILABLE. */
  static readonly EXIT_CODE = 69;
}

/** Why a fetch failed, in words: undici says only "fetch failed" and keeps the reason in `cause`. */
export function fetchFailure(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string; errors?: (Error & { code?: string })[] } };
  if (e?.name === 'TimeoutError') return 'no answer in time';
  const cause = e?.cause;
  const code = cause?.code ?? cause?.errors?.find((x) => x.code)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused: nothing listens there';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'the connection was closed without an answer';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'the host is unreachable';
    default:
      return cause?.message || code || (e instanceof Error ? e.message : String(err));
  }
}

/**
 * Asks `GET /health` and throws an UnreachableError that names the URL, why, and where the URL comes
 * from, when nothing answers there or what answers is not a Fluxo node.
 */
export async function requireNode(url: string, timeoutMs = 5000): Promise<void> {
  const hint = `start a node (npm start) or point at one with --url or FLUXO_URL (default ${DEFAULT_FLUXO_URL})`;
  let res: Response;
  try {
    res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new UnreachableError(`nothing answers at ${url} (${fetchFailure(err)}): ${hint}`);
  }
  const body = await res.text().catch(() => '');
  if (res.status !== 200 || !/"status"\s*:\s*"ok"/.test(body))
    throw new UnreachableError(`${url}/health answered HTTP ${res.status}, not a Fluxo node's {"status":"ok"}: ${hint}`);
}
