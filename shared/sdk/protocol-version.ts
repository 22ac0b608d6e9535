import { PROTOCOL_VERSION } from '../protocol.js';
import { FluxoError } from './errors.js';

const VERSION = /^(\d+)\.(\d+)$/;

/**
 * Whether this SDK can talk to a server that said `version` in its `hello` (the rule is at
 * PROTOCOL_VERSION in shared/protocol.ts): any minor of the SDK's own major is fine; another major,
 * or a version that is not `MAJOR.MINOR`, is a `protocol_mismatch` (final). No version at all is a
 * server older than versioning, which speaks 1.0: accepted, so a new SDK keeps working against it.
 * @returns null when compatible, else the error to give up with
 */
export function protocolMismatch(version: unknown, ours: string = PROTOCOL_VERSION): FluxoError | null {
  if (version === undefined || version === null) return null;
  const theirs = typeof version === 'string' ? VERSION.exec(version) : null;
  const mine = VERSION.exec(ours);
  if (theirs && mine && theirs[1] === mine[1]) return null;
  return new FluxoError(
    'protocol_mismatch',
    `The server speaks protocol ${JSON.stringify(version)}, this SDK speaks ${ours}: upgrade the one that is behind.`,
  );
}
