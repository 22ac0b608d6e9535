import { backoffDelay, FluxoError } from '../../shared/sdk/index.js';

/**
 * Runs `request` until it succeeds, and retries it — after the server's `retryAfterMs` (Retry-After)
 * when it gave one, else a capped backoff — while it fails with an error `retry` accepts and the
 * answer is still `wanted()` (the board is open, no newer request replaced this one).
 * Rejects with the last error otherwise.
 */
export async function retrying<T>(
  request: () => Promise<T>,
  wanted: () => boolean,
  retry: (err: FluxoError) => boolean = (err) => err.retryable,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      if (!(err instanceof FluxoError) || !retry(err) || !wanted()) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.max(err.retryAfterMs ?? 0, backoffDelay(attempt))));
      if (!wanted()) throw err;
    }
  }
}
