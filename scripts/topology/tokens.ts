import { mintToken } from '../../server/auth/mint.js';
import type { Role } from '../../shared/protocol.js';

/** The HS256 secret of the nodes that tests and benches start (in-process and spawned). */
export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256!';

/** A token for `sub` in tenant `tid`: an editor for an hour, signed with TEST_SECRET unless told otherwise. */
export function token(opts: { sub: string; tid: string; role?: Role; name?: string; ttlS?: number; secret?: string }): Promise<string> {
  return mintToken({
    sub: opts.sub,
    tid: opts.tid,
    role: opts.role ?? 'editor',
    ttlS: opts.ttlS ?? 3600,
    secret: opts.secret ?? TEST_SECRET,
    ...(opts.name ? { name: opts.name } : {}),
  });
}
