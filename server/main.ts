import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config/index.js';
import { ListenError } from './transport/uws.js';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    // One clear line, no stack: the operator fixes the variable it names.
    process.stderr.write(`fluxo: ${err.message}\n`);
    process.exit(78);
  }
  throw err;
}

const cannotStart = (err: unknown): never => {
  process.stderr.write(`fluxo: cannot start — ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof ListenError ? ListenError.EXIT_CODE : 1);
};
const node = await createApp(config).catch(cannotStart);
await node.listen().catch(cannotStart);

let draining = false;
// Last line of defence, never the plan: every entry point (HTTP route, socket event, middleware)
// catches its own errors and answers them. A stray rejection is a bug of Fluxo or of a library — it
// is logged once, with its stack, and the node keeps serving its other clients instead of dropping
// every one of them. While draining (a client being closed) it is expected and only a warning; the
// drain test fails on that message.
process.on('unhandledRejection', (err) => {
  if (draining) node.log.warn({ err }, 'unhandled rejection while draining');
  else node.log.error({ err }, 'unhandled rejection');
});

const stop = (signal: string) => {
  // A terminal's Ctrl-C reaches every process of the group, and npm forwards it to its child too:
  // the server sees SIGINT twice. The second must not kill it mid-drain (the hard deadline bounds the drain).
  if (draining) {
    node.log.info({ signal }, 'shutdown already under way');
    return;
  }
  node.log.info({ signal }, 'shutdown requested');
  const hard = setTimeout(() => {
    node.log.error({ afterMs: config.shutdownGraceMs + 2000 }, 'shutdown did not finish in time');
    process.exit(1);
  }, config.shutdownGraceMs + 2000);
  hard.unref();
  draining = true;
  node.close().then(
    () => process.exit(0),
    (err) => {
      node.log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
