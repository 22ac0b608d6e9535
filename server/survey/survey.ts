import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../ops/metrics.js';

/**
 * Asks every node of the cluster a question and gathers the answers: the transport of the operator
 * API (Centrifugo calls the same thing a "survey"). Each node answers from its own state. On one
 * node it answers alone (`createLocalSurvey`); with Redis see redis.ts.
 */
export interface Survey {
  /** This node, as it announces itself. */
  readonly self: NodeBeat;
  handle(op: string, fn: SurveyHandler): void;
  /** Asks this node and every node it knows; resolves within OPERATOR_TIMEOUT_MS (never rejects for a silent peer). */
  ask<R>(op: string, arg: unknown): Promise<SurveyResult<R>>;
  /** The nodes heard from within the TTL, this one included, with what they last said about themselves. */
  nodes(): NodeBeat[];
  start(): Promise<void>;
  /** Says goodbye (the others forget this node at once) and stops listening. */
  stop(): Promise<void>;
}

/** What a node says about itself. */
export interface NodeBeat {
  nodeId: string;
  version: string;
  startedAt: string;
}

export interface SurveyAnswer<R> {
  nodeId: string;
  result: R;
}

export interface SurveyResult<R> {
  /** This node's answer first, then the others' in arrival order. */
  answers: SurveyAnswer<R>[];
  /** Nodes believed alive that did not answer in time (or failed to), sorted. */
  missing: string[];
}

/** Answers one kind of question from this node's own state. Arguments come from peers running Fluxo: check what they need. */
export type SurveyHandler = (arg: unknown) => Promise<unknown> | unknown;

/** The questions this node answers, by name. */
export class SurveyHandlers {
  readonly #handlers = new Map<string, SurveyHandler>();

  set(op: string, fn: SurveyHandler): void {
    this.#handlers.set(op, fn);
  }

  /** Throws for an op nobody registered: a bug of this node, or a peer of another version. */
  get(op: string): SurveyHandler {
    const fn = this.#handlers.get(op);
    if (!fn) throw new Error(`unknown survey op ${op}`);
    return fn;
  }
}

/** `cluster_nodes_seen` and `cluster_survey_missing_total`, the same with or without Redis. */
export function surveyMetrics(metrics: Metrics, nodesSeen: () => number): { missed: Counter } {
  new Gauge({
    name: 'cluster_nodes_seen',
    help: 'Nodes this node heard from within PRESENCE_TTL_MS, itself included (the operator API node list)',
    registers: [metrics.registry],
    collect() {
      this.set(nodesSeen());
    },
  });
  const missed = new Counter({
    name: 'cluster_survey_missing_total',
    help: 'Nodes that did not answer an operator API question within OPERATOR_TIMEOUT_MS',
    registers: [metrics.registry],
  });
  return { missed };
}

/** A single node: it is the whole cluster, and answers alone. */
export function createLocalSurvey(opts: { self: NodeBeat; metrics: Metrics }): Survey {
  const { self } = opts;
  const handlers = new SurveyHandlers();
  surveyMetrics(opts.metrics, () => 1);
  return {
    self,
    handle: (op, fn) => handlers.set(op, fn),
    ask: async <R>(op: string, arg: unknown) => {
      const fn = handlers.get(op);
      return { answers: [{ nodeId: self.nodeId, result: (await fn(arg)) as R }], missing: [] };
    },
    nodes: () => [self],
    start: async () => {},
    stop: async () => {},
  };
}
