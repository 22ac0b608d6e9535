import pino, { type Logger } from 'pino';

export type { Logger };

/** JSON logs with the node id on every line. Tokens never reach a log: redact the headers that carry them. */
export function createLogger(level: string, nodeId: string): Logger {
  return pino({
    level,
    base: { node: nodeId },
    redact: {
      paths: ['token', '*.token', 'headers.authorization', 'headers.cookie', 'req.headers.authorization', 'req.headers.cookie'],
      censor: '[redacted]',
    },
  });
}
