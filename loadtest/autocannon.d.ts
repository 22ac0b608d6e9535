/**
 * The part of autocannon's API the load tools use. Not @types/autocannon (7.12.7): it types the call
 * without a callback as a bare `Promise<Result>`, while autocannon 9 returns the instance — an
 * emitter that is also awaited, which drive() in http.ts listens to and hands to `track` — and it
 * types a request's `context` as `object`, which the HTTP scenarios keep their state in.
 */
declare module 'autocannon' {
  export interface Request {
    method?: string;
    path?: string;
    body?: string;
    headers?: Record<string, string>;
    setupRequest?: (req: Request, context: Record<string, unknown>) => Request;
    onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
  }
  export interface Client {
    setRequests(requests: Request[]): void;
  }
  export interface Options {
    url: string;
    connections?: number;
    duration?: number;
    amount?: number;
    overallRate?: number;
    requests?: Request[];
    setupClient?: (client: Client) => void;
  }
  export interface Stat {
    total: number;
    [key: string]: number;
  }
  export interface Result {
    requests: Stat;
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    /** Response bytes per second; `total`: all of them. */
    throughput: Stat;
    start: Date;
    finish: Date;
  }
  export interface Instance extends Promise<Result> {
    /** Each response, as it arrives (`ms`: its latency). */
    on(event: 'response', listener: (client: Client, status: number, bytes: number, ms: number) => void): this;
    /** A socket error or timeout. */
    on(event: 'reqError', listener: (err: Error) => void): this;
  }
  function autocannon(opts: Options): Instance;
  namespace autocannon {
    function track(instance: Instance, opts?: { renderProgressBar?: boolean; renderResultsTable?: boolean }): void;
  }
  export default autocannon;
}
