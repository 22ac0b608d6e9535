import { describe, expect, it } from 'vitest';
import { AppError } from '../../server/errors.js';
import { LiveCounts } from '../../server/limits/caps.js';
import { DEFAULT_LIMITS, parseRateLimits, RateLimitsError, resolveLimits } from '../../server/limits/parse.js';
import { createRateLimits, reportingRefusals } from '../../server/limits/rate-limits.js';

describe('parseRateLimits', () => {
  it('parses overrides and ignores blanks and spaces', () => {
    expect(parseRateLimits(' process:transition=5/2 , http:write = 50 / 1 ,')).toEqual({
      'process:transition': { points: 5, durationS: 2 },
      'http:write': { points: 50, durationS: 1 },
    });
    expect(parseRateLimits('')).toEqual({});
  });

  it('keeps defaults for events not overridden', () => {
    const limits = resolveLimits('publish=10/1');
    expect(limits.publish).toEqual({ points: 10, durationS: 1 });
    expect(limits.handshake).toEqual(DEFAULT_LIMITS.handshake);
  });

  it.each([
    ['http:write=50', /"http:write=50" is not of the form/],
    ['http:write=fifty/1', /"http:write=fifty\/1"/],
    ['http:wrte=5/1', /unknown event "http:wrte"/],
    ['publish=0/1', /"publish=0\/1": points/],
    ['publish=1/0', /"publish=1\/0": seconds/],
    ['publish=1/1,publish=2/1', /a second time/],
    ['publish=-1/1', /"publish=-1\/1"/],
  ])('throws an error naming the bad entry for %j', (spec, message) => {
    expect(() => parseRateLimits(spec)).toThrow(message);
  });
});

describe('createRateLimits in memory', () => {
  it('allows the budget, then refuses with rate_limited and retryAfterMs', async () => {
    const limits = createRateLimits({ spec: 'process:transition=3/1' });
    for (let i = 0; i < 3; i++) await limits.consume('process:transition', 'acme:u1');
    const err = await limits.consume('process:transition', 'acme:u1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    const body = (err as AppError).toBody();
    expect(body.code).toBe('rate_limited');
    expect(body.retryAfterMs).toBeGreaterThan(0);
    expect(body.retryAfterMs).toBeLessThanOrEqual(1000);
  });

  it('keeps subjects and events apart', async () => {
    const limits = createRateLimits({ spec: 'process:transition=1/10,presence:update=1/10' });
    await limits.consume('process:transition', 'acme:u1');
    await limits.consume('process:transition', 'acme:u2');
    await limits.consume('presence:update', 'acme:u1');
    await expect(limits.consume('process:transition', 'acme:u1')).rejects.toMatchObject({ code: 'rate_limited' });
  });

  it('counts points and limits handshakes per IP', async () => {
    const limits = createRateLimits({ spec: 'http:write=10/10,handshake=2/10' });
    await limits.consume('http:write', 's', 10);
    await expect(limits.consume('http:write', 's')).rejects.toMatchObject({ code: 'rate_limited' });
    await limits.consumeHandshake('198.51.100.1');
    await limits.consumeHandshake('198.51.100.1');
    await limits.consumeHandshake('198.51.100.2');
    await expect(limits.consumeHandshake('198.51.100.1')).rejects.toMatchObject({ code: 'rate_limited' });
  });

  it('refreshes the budget after the window', async () => {
    const limits = createRateLimits({ spec: 'http:read=1/1' });
    await limits.consume('http:read', 's');
    const err = (await limits.consume('http:read', 's').catch((e: unknown) => e)) as AppError;
    await new Promise((r) => setTimeout(r, (err.extra.retryAfterMs ?? 0) + 20));
    await expect(limits.consume('http:read', 's')).resolves.toBeUndefined();
  });

  it('refuses a bad spec', () => {
    expect(() => createRateLimits({ spec: 'nope=1/1' })).toThrow(RateLimitsError);
  });

  it('gives back refunded points, and reports each refusal', async () => {
    const refused: string[] = [];
    const limits = reportingRefusals(createRateLimits({ spec: 'auth=2/60' }), (e) => refused.push(e));
    await limits.consume('auth', '192.0.2.1');
    await limits.refund('auth', '192.0.2.1');
    await limits.consume('auth', '192.0.2.1');
    await limits.consume('auth', '192.0.2.1');
    await expect(limits.consume('auth', '192.0.2.1')).rejects.toMatchObject({ code: 'rate_limited' });
    expect(refused).toEqual(['auth']);
  });

  it("reports a shared budget's refusals to the view that was refused (one per transport, for the metrics)", async () => {
    const limits = createRateLimits({ spec: 'process:transition=2/60' });
    const http: string[] = [];
    const ws: string[] = [];
    const httpLimits = reportingRefusals(limits, (e) => http.push(e));
    const wsLimits = reportingRefusals(limits, (e) => ws.push(e));
    await httpLimits.consume('process:transition', 'acme:u');
    await wsLimits.consume('process:transition', 'acme:u');
    await expect(wsLimits.consume('process:transition', 'acme:u')).rejects.toMatchObject({ code: 'rate_limited' });
    await expect(httpLimits.consume('process:transition', 'acme:u')).rejects.toMatchObject({ code: 'rate_limited' });
    await expect(wsLimits.consumeHandshake('192.0.2.1')).resolves.toBeUndefined();
    expect({ http, ws }).toEqual({ http: ['process:transition'], ws: ['process:transition'] });
  });
});

describe('budgets that follow others unless set', () => {
  it('gives `events` the sum of the socket events’ points per second, and `session` twice `handshake`', () => {
    expect(resolveLimits('').events).toEqual(DEFAULT_LIMITS.events);
    expect(DEFAULT_LIMITS.events.points).toBe(
      DEFAULT_LIMITS['process:transition'].points +
        DEFAULT_LIMITS['presence:update'].points +
        DEFAULT_LIMITS.subscribe.points +
        DEFAULT_LIMITS['auth:refresh'].points,
    );
    expect(resolveLimits('').session).toEqual(DEFAULT_LIMITS.session);
    expect(resolveLimits('process:transition=1000/1,handshake=100/1')).toMatchObject({
      events: { points: 1065, durationS: 1 },
      session: { points: 200, durationS: 1 },
    });
    expect(resolveLimits('events=7/2,session=3/4,handshake=100/1')).toMatchObject({
      events: { points: 7, durationS: 2 },
      session: { points: 3, durationS: 4 },
    });
  });
});

describe('LiveCounts', () => {
  it('takes slots up to its ceiling, frees them, and forgets keys at zero', () => {
    const c = new LiveCounts(2);
    expect([c.acquire('a'), c.acquire('a'), c.acquire('a'), c.acquire('b')]).toEqual([true, true, false, true]);
    expect(c.full('a')).toBe(true);
    c.release('a');
    expect(c.full('a')).toBe(false);
    c.add('a');
    c.add('a');
    expect(c.count('a')).toBe(3);
    for (let i = 0; i < 3; i++) c.release('a');
    c.release('b');
    c.release('b');
    expect(c.size).toBe(0);
  });
});
