/**
 * Everything that touches uWebSockets.js lives in this file (as socket.io keeps its uWS glue in
 * one `uws.ts`): the app, Socket.IO's attachApp, body reading and response writing. Its settings
 * from the environment are in uws-env.ts.
 */

// First: sets what uWebSockets.js reads from the environment when it loads.
import './uws-env.js';
import uWS from 'uWebSockets.js';
import { createServer } from 'node:net';
import type { Server as IoServer } from 'socket.io';

export interface HttpRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** Lower-case header names. */
  headers: Record<string, string>;
  /** Address of the TCP peer (nginx, when behind it). */
  peer: string;
  body: Buffer | null;
}

export interface HttpResponse {
  status: number;
  headers?: [string, string][];
  body?: string | Buffer;
}

export type HttpHandler = (req: HttpRequest) => Promise<HttpResponse>;

export interface UwsServerOptions {
  maxPayloadBytes: number;
  handle: HttpHandler;
  /** Answer for bodies over maxPayloadBytes, built by the caller so the error shape stays in one place. */
  tooLarge: () => HttpResponse;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  302: 'Found',
  304: 'Not Modified',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

const WITH_BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Whether a request's `Connection` header holds the `close` option (a comma-separated list, any case). */
export function asksToClose(connection: string | undefined): boolean {
  return connection?.split(',').some((option) => option.trim().toLowerCase() === 'close') ?? false;
}

/**
 * Whether uWS itself will close the connection after the response: it does for every request whose
 * `Connection` value is 5 characters long (its test for "close", in HttpContext.h) and then never
 * writes `Connection: close` (nor lets `end(…, true)` write it). Mirrored here so that the response
 * says so exactly when it happens; test/integration/http-conformance.test.ts holds uWS to it.
 */
function uwsClosesAnyway(connection: string | undefined): boolean {
  return connection?.length === 5;
}

/**
 * uWS exports this constant (1) but its typings do not declare it: they name it only as a member of
 * `enum ListenOptions`, which exists in no build at run time.
 */
const LISTEN_EXCLUSIVE_PORT = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT ?? 1;

/** A start-up failure to listen on HOST:PORT, with the OS's reason (`EADDRINUSE`, `EACCES`, …) when it gives one. */
export class ListenError extends Error {
  /** The process exit code for it (sysexits EX_UNAVAILABLE): distinct from a configuration error's 78. */
  static readonly EXIT_CODE = 69;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly code: string,
  ) {
    super(
      code === 'EADDRINUSE'
        ? `port ${port} is already in use on ${host}: another process listens there (stop it, or set PORT to a free port)`
        : code === 'EACCES'
          ? `no permission to listen on ${host}:${port} (ports below 1024 need privileges: set PORT)`
          : code === 'EADDRNOTAVAIL'
            ? `cannot listen on ${host}:${port}: ${host} is not an address of this machine (set HOST)`
            : `cannot listen on ${host}:${port} (${code})`,
    );
    this.name = 'ListenError';
  }
}

/** Binds host:port with node:net (no SO_REUSEPORT) and releases it at once: the errno of the failure, or `UNKNOWN`. */
function whyCannotListen(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'UNKNOWN'));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve('UNKNOWN')));
  });
}

export class UwsServer {
  readonly app: uWS.TemplatedApp;
  private listenSocket: uWS.us_listen_socket | null = null;

  constructor(private readonly opts: UwsServerOptions) {
    this.app = uWS.App();
    this.app.any('/*', (res, req) => this.onRequest(res, req));
  }

  /** Socket.IO's engine registers its own /socket.io/ routes on the same app and port. */
  attach(io: IoServer): void {
    io.attachApp(this.app);
  }

  /**
   * Listens with the port to itself. uWS sets SO_REUSEPORT by default, so a second node started on a
   * port already taken would say "listening" and the kernel would split the connections between the
   * two; LIBUS_LISTEN_EXCLUSIVE_PORT makes that a refusal, reported as a ListenError.
   */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      // uWS takes (host, port, options, cb); its typings know options only without a host.
      const listen = this.app.listen as unknown as (
        h: string,
        p: number,
        options: number,
        cb: (s: uWS.us_listen_socket | false) => void,
      ) => void;
      listen.call(this.app, host, port, LISTEN_EXCLUSIVE_PORT, (socket) => {
        if (socket) {
          this.listenSocket = socket;
          resolve(uWS.us_socket_local_port(socket));
          return;
        }
        // uWS only says `false`: ask the OS why, through node:net, so the error can name the cause.
        void whyCannotListen(host, port).then((code) => reject(new ListenError(host, port, code)));
      });
    });
  }

  /** Stops accepting new connections; live ones stay until closed. */
  stopListening(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }

  /** Closes everything, live connections included. */
  close(): void {
    this.stopListening();
    this.app.close();
  }

  private onRequest(res: uWS.HttpResponse, req: uWS.HttpRequest): void {
    // uWS invalidates `req` when this function returns: copy what we need now.
    const method = req.getMethod().toUpperCase();
    const headers: Record<string, string> = {};
    req.forEach((k, v) => {
      headers[k] = v;
    });
    const request: HttpRequest = {
      method,
      path: req.getUrl(),
      // `undefined` when the URL has no query (uWS v20.51; its typings still say string).
      query: new URLSearchParams(req.getQuery() ?? ''),
      headers,
      peer: Buffer.from(res.getRemoteAddressAsText()).toString(),
      body: null,
    };
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const respond = (out: HttpResponse) => {
      if (aborted) return;
      let close = asksToClose(headers.connection);
      res.cork(() => {
        res.writeStatus(`${out.status} ${STATUS_TEXT[out.status] ?? ''}`);
        for (const [k, v] of out.headers ?? []) {
          // Ours to write, once, and only when the connection is really closed (below).
          if (k.toLowerCase() === 'connection') close ||= /\bclose\b/i.test(v);
          else res.writeHeader(k, v);
        }
        if (uwsClosesAnyway(headers.connection)) {
          // uWS closes after this response but does not say so: say it (RFC 9112 §9.6), or a
          // keep-alive client sends its next request on a dead connection ("socket hang up").
          res.writeHeader('Connection', 'close');
          res.end(out.body ?? '');
        } else {
          // `closeConnection`: uWS writes `Connection: close` itself and closes once it is sent.
          res.end(out.body ?? '', close);
        }
      });
    };
    const run = () => {
      this.opts
        .handle(request)
        .then(respond, () => respond({ status: 500, body: '{"error":{"code":"internal","message":"Internal error."}}' }));
    };
    if (!WITH_BODY.has(method)) {
      run();
      return;
    }

    const declared = Number(headers['content-length'] ?? 0);
    if (declared > this.opts.maxPayloadBytes) {
      respond({ ...this.opts.tooLarge(), headers: [...(this.opts.tooLarge().headers ?? []), ['Connection', 'close']] });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    res.onData((chunk, isLast) => {
      if (refused) return;
      size += chunk.byteLength;
      if (size > this.opts.maxPayloadBytes) {
        refused = true;
        respond({ ...this.opts.tooLarge(), headers: [...(this.opts.tooLarge().headers ?? []), ['Connection', 'close']] });
        return;
      }
      // The chunk's memory is reused after this callback: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (isLast) {
        request.body = Buffer.concat(chunks);
        run();
      }
    });
  }
}
