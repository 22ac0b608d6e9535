// The faults of a Fluxo node: killed, frozen mid-transaction or mid-commit, drained; and no fault.
import { describeFaults, NODE_FAULTS } from './suite.js';

describeFaults((s) => NODE_FAULTS.includes(s.name));
