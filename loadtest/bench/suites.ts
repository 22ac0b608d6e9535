import { connections } from './connections.js';
import { crossNode } from './cross-node.js';
import { fanout } from './fanout.js';
import { fanout10k } from './fanout-10k.js';
import { replay } from './replay.js';
import { scale } from './scale.js';
import type { Suite } from './suite.js';
import { writePath } from './write-path.js';

/** Every suite of `npm run bench`, in the order a full run takes them. */
// biome-ignore lint/suspicious/noExplicitAny: each suite has its own result type
export const SUITES: Suite<any>[] = [fanout, crossNode, fanout10k, connections, replay, writePath, scale];
