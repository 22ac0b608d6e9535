// Every other scenario: the faults of what the nodes share — Redis (one server, or a 3-master Redis
// Cluster) and Postgres. A scenario not named in NODE_FAULTS runs here, so none is left out.
import { describeFaults, NODE_FAULTS } from './suite.js';

describeFaults((s) => !NODE_FAULTS.includes(s.name));
