import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config/index.js';

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

const node = await createApp(config).catch((err: unknown) => {
  process.stderr.write(`fluxo: cannot start — ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

const stop = (signal: string) => {
  node.log.info({ signal }, 'shutdown requested');
  const hard = setTimeout(() => {
    node.log.error({ afterMs: config.shutdownGraceMs + 2000 }, 'shutdown did not finish in time');
    process.exit(1);
  }, config.shutdownGraceMs + 2000);
  hard.unref();
  // Last resort while draining: a library's stray rejection (a client being closed) is logged
  // instead of ending the drain with code 1. The drain itself handles every one it knows of; the
  // drain test fails on this message.
  process.on('unhandledRejection', (err) => node.log.warn({ err }, 'unhandled rejection while draining'));
  node.shutdown().then(
    () => process.exit(0),
    (err) => {
      node.log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
