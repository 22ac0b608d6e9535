import { Agent, request } from 'node:http';
import { createServer, connect as netConnect, type Socket } from 'node:net';

/**
 * Loopback source addresses that nginx's `ip_hash` spreads over the upstreams: it hashes the first
 * three octets, so 127.0.1.1, 127.0.2.1, … can land on different nodes (any of 127/8 is local).
 */
export function sourceAddress(k: number): string {
  if (!Number.isInteger(k) || k < 1 || k > 254) throw new Error(`source address index ${k} is not 1..254`);
  return `127.0.${k}.1`;
}

export interface SourceForwarder {
  /** Where to connect (`http://127.0.0.1:<port>`): it reaches the target from `localAddress`. */
  url: string;
  localAddress: string;
  close(): Promise<void>;
}

/**
 * A TCP forwarder on a free loopback port that opens every connection to `target` from
 * `localAddress`. For clients that cannot bind a local address themselves — the SDK's options do
 * not reach socket.io-client's `localAddress` — so that nginx sees them coming from it. Closing
 * either side closes the other, so a node dying behind nginx reaches the client as a dropped
 * connection, as it would without the forwarder.
 */
export async function forwardFrom(localAddress: string, target: { host: string; port: number }): Promise<SourceForwarder> {
  const open = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = netConnect({ host: target.host, port: target.port, localAddress });
    for (const s of [inbound, outbound]) {
      open.add(s);
      s.setNoDelay(true);
      s.once('close', () => {
        open.delete(s);
        inbound.destroy();
        outbound.destroy();
      });
      s.on('error', () => {}); // the 'close' that follows tears both down
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('forwarder: no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    localAddress,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Which Fluxo node answers `GET /health` through `url` (nginx) for a client at `localAddress`. */
export function nodeBehind(url: string, localAddress: string, timeoutMs = 5000): Promise<string> {
  const agent = new Agent({ localAddress });
  return new Promise<string>((resolve, reject) => {
    const req = request(`${url}/health`, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => {
        try {
          const node = (JSON.parse(body) as { node?: unknown }).node;
          if (typeof node === 'string') resolve(node);
          else reject(new Error(`GET /health from ${localAddress}: no node in ${body}`));
        } catch {
          reject(new Error(`GET /health from ${localAddress}: ${res.statusCode} ${body.slice(0, 200)}`));
        }
      });
    });
    req.once('timeout', () => req.destroy(new Error(`GET /health from ${localAddress}: no answer in ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  }).finally(() => agent.destroy());
}
