/**
 * The socket contract (shared/contract.ts), held in place by the compiler: vitest's typecheck runs
 * tsc on this file (project `types`), and every `@ts-expect-error` below must meet an error — were
 * a type loose enough to accept the line, tsc would report the directive as unused and fail.
 */
import type { Socket as ClientSocket } from 'socket.io-client';
import { describe, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import type { FluxoSocket } from '../../server/realtime/deps.js';
import type {
  Ack,
  CLIENT_EVENTS,
  ClientEventHandlers,
  ClientEventName,
  ClientReplies,
  ClientToServerEvents,
  ConnectError,
  ConnectErrorData,
  ReplyOf,
  RequestOf,
  ServerToClientEvents,
  ServerUnsubscribe,
  SubscribeResult,
  TransitionResult,
} from '../../shared/contract.js';
import type { ErrorCode } from '../../shared/errors.js';
import type * as protocol from '../../shared/protocol.js';
import type { presenceUpdateSchema, subscribeSchema, transitionSchema } from '../../shared/schemas.js';
import type { FluxoClient, FluxoError, FluxoSocket as SdkSocket } from '../../shared/sdk/index.js';

/** A registry that compiles: the tests below each change one thing in it. */
declare const registry: ClientEventHandlers<FluxoSocket>;
declare const room: SubscribeResult;

describe("the server's handler registry", () => {
  it('takes a handler per event whose reply is that event’s ack data', () => {
    const handlers: ClientEventHandlers<FluxoSocket> = {
      ...registry,
      subscribe: async (_socket, req) => ({ ...room, room: req.room }),
      unsubscribe: async (_socket, { room }) => ({ room }),
    };
    expectTypeOf(handlers.subscribe).returns.toEqualTypeOf<Promise<SubscribeResult>>();
    expectTypeOf(handlers['process:transition']).returns.toEqualTypeOf<Promise<TransitionResult>>();
  });

  it('refuses a reply of the wrong shape', () => {
    const handlers: ClientEventHandlers<FluxoSocket> = {
      ...registry,
      // @ts-expect-error — `{ rooom: 42 }` is not a SubscribeResult
      subscribe: async () => ({ rooom: 42 }),
    };
    void handlers;
  });

  it("refuses another event's reply and a reply missing a field", () => {
    const handlers: ClientEventHandlers<FluxoSocket> = {
      ...registry,
      // @ts-expect-error — unsubscribe's `{ room }` is not subscribe's reply
      subscribe: async (_socket, { room }) => ({ room }),
      // @ts-expect-error — `exp` must be a number
      'auth:refresh': async () => ({ exp: 'soon' }),
    };
    void handlers;
  });

  it('refuses a handler that reads a field its request does not have', () => {
    const handlers: ClientEventHandlers<FluxoSocket> = {
      ...registry,
      // @ts-expect-error — unsubscribe's request has `room`, not `rooom`
      unsubscribe: async (_socket, req) => ({ room: req.rooom }),
    };
    void handlers;
  });

  it('refuses a registry missing an event, and one with an event the contract lacks', () => {
    const { 'auth:refresh': _left, ...withoutRefresh } = registry;
    // @ts-expect-error — no handler for 'auth:refresh'
    const missing: ClientEventHandlers<FluxoSocket> = { ...withoutRefresh };
    const extra: ClientEventHandlers<FluxoSocket> = {
      ...registry,
      // @ts-expect-error — 'process:delete' is not a client event
      'process:delete': async () => ({}),
    };
    void [missing, extra];
  });

  it('gives each handler its request as its schema’s output (z.infer)', () => {
    expectTypeOf<Parameters<ClientEventHandlers<FluxoSocket>['subscribe']>[1]>().toEqualTypeOf<z.output<typeof subscribeSchema>>();
    expectTypeOf<RequestOf<'process:transition'>>().toEqualTypeOf<z.output<typeof transitionSchema>>();
    expectTypeOf<RequestOf<'presence:update'>>().toEqualTypeOf<z.output<typeof presenceUpdateSchema>>();
    expectTypeOf<RequestOf<'subscribe'>>().toEqualTypeOf<{ room: string; after?: number | undefined }>();
  });

  it('lists the same events at run time as in the types', () => {
    expectTypeOf<(typeof CLIENT_EVENTS)[number]>().toEqualTypeOf<ClientEventName>();
    expectTypeOf<keyof ClientToServerEvents>().toEqualTypeOf<keyof ClientReplies>();
  });
});

describe('clients: the SDK and socket.io-client', () => {
  it('types the SDK’s socket with the contract’s event maps', () => {
    expectTypeOf<SdkSocket>().toEqualTypeOf<ClientSocket<ServerToClientEvents, ClientToServerEvents>>();
    expectTypeOf<FluxoClient['socket']>().toEqualTypeOf<ClientSocket<ServerToClientEvents, ClientToServerEvents>>();
  });

  it('resolves the SDK’s calls with the acks’ data', () => {
    expectTypeOf<FluxoClient['transition']>().returns.toEqualTypeOf<Promise<ReplyOf<'process:transition'>>>();
    expectTypeOf<ReturnType<FluxoClient['subscribe']>['ready']>().toEqualTypeOf<Promise<ReplyOf<'subscribe'>>>();
  });

  it('gives a socket.io-client user the same requests and acks, and refuses a wrong one', () => {
    const socket = {} as ClientSocket<ServerToClientEvents, ClientToServerEvents>;
    socket.emit('subscribe', { room: 'tenant', after: 3 }, (ack) => {
      expectTypeOf(ack).toEqualTypeOf<Ack<SubscribeResult>>();
    });
    socket.emit('unsubscribe', { room: 'tenant' }, (ack) => {
      if ('data' in ack) expectTypeOf(ack.data).toEqualTypeOf<{ room: string }>();
      else expectTypeOf(ack.error.code).toEqualTypeOf<ErrorCode>();
    });
    // @ts-expect-error — `rooom` is no field of subscribe's request
    socket.emit('subscribe', { rooom: 'tenant' }, () => {});
    // @ts-expect-error — `after` is a number
    socket.emit('subscribe', { room: 'tenant', after: '3' }, () => {});
    // @ts-expect-error — not a client event
    socket.emit('process:delete', { processId: 'p1' }, () => {});
    socket.on('server:unsubscribe', (info) => expectTypeOf(info).toEqualTypeOf<ServerUnsubscribe>());
  });

  it('takes the contract’s types from shared/protocol.ts too (one set, re-exported)', () => {
    expectTypeOf<protocol.ClientToServerEvents>().toEqualTypeOf<ClientToServerEvents>();
    expectTypeOf<protocol.ServerToClientEvents>().toEqualTypeOf<ServerToClientEvents>();
    expectTypeOf<protocol.TransitionRequest>().toEqualTypeOf<RequestOf<'process:transition'>>();
  });

  it('surfaces a server-side unsubscribe as `unsubscribed`, with the room and a FluxoError', () => {
    const client = {} as FluxoClient;
    client.on('unsubscribed', (info) => expectTypeOf(info).toEqualTypeOf<{ room: string; error: FluxoError }>());
  });
});

describe('server → client messages', () => {
  it('makes a subscribe ack say how many are in the room and whether the list was left out', () => {
    expectTypeOf<SubscribeResult['presenceCount']>().toEqualTypeOf<number>();
    expectTypeOf<SubscribeResult['presenceTruncated']>().toEqualTypeOf<boolean>();
    const { presenceCount: _count, ...withoutCount } = room;
    const handlers: ClientEventHandlers<FluxoSocket> = {
      ...registry,
      // @ts-expect-error — a subscribe ack without `presenceCount`
      subscribe: async () => withoutCount,
    };
    void handlers;
  });

  it('makes a presence diff say whether it is the one telling the room went over the bound', () => {
    const socket = {} as FluxoSocket;
    socket.emit('presence', { room: 'tenant', joins: [], leaves: [], updates: [], count: 1001, truncated: true });
    // @ts-expect-error — `truncated` is missing
    socket.emit('presence', { room: 'tenant', joins: [], leaves: [], updates: [] });
    const client = {} as FluxoClient;
    expectTypeOf(client.presenceCount).returns.toEqualTypeOf<number>();
    client.on('presence', (change) => expectTypeOf(change).toHaveProperty('truncated').toEqualTypeOf<boolean>());
  });

  it('lets the server emit only what the contract says', () => {
    const socket = {} as FluxoSocket;
    socket.emit('server:unsubscribe', { room: 'tenant', code: 'unsubscribed_by_operator', message: 'bye' });
    // @ts-expect-error — `code` is missing
    socket.emit('server:unsubscribe', { room: 'tenant', message: 'bye' });
    // @ts-expect-error — not a catalog code
    socket.emit('server:disconnect', { code: 'kicked', message: 'bye' });
    // @ts-expect-error — not a server event
    socket.emit('server:kick', {});
  });

  it('shapes the connect_error data one way for the server and the SDK', () => {
    expectTypeOf<NonNullable<ConnectError['data']>>().toEqualTypeOf<ConnectErrorData>();
    expectTypeOf<ConnectErrorData['code']>().toEqualTypeOf<ErrorCode>();
  });
});
