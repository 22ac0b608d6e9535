import { describe, expect, it } from 'vitest';
import type { FluxoServer } from '../../server/realtime/deps.js';
import { PresenceDiffs } from '../../server/realtime/presence-diffs.js';
import type { PresenceDiff, PresenceMember } from '../../shared/protocol.js';

const member = (userId: string, connections = 1, state: PresenceMember['state'] = null): PresenceMember => ({
  userId,
  name: null,
  connections,
  state,
});

function fakeIo() {
  const sent: { room: string; diff: PresenceDiff }[] = [];
  const io = { to: (room: string) => ({ emit: (_e: string, diff: PresenceDiff) => sent.push({ room, diff }) }) } as unknown as FluxoServer;
  return { io, sent };
}

describe('presence diff coalescing', () => {
  it('sends one message per room per window, with the net change of each user', () => {
    const { io, sent } = fakeIo();
    const diffs = new PresenceDiffs(io);
    const none = { joins: [], leaves: [], updates: [] };
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('ada')] });
    diffs.push('t:a:tenant', 'tenant', { ...none, updates: [member('ada', 2, { status: 'editing' })] });
    diffs.push('t:a:tenant', 'tenant', { ...none, joins: [member('eve')] });
    diffs.push('t:a:tenant', 'tenant', { ...none, leaves: ['eve'] });
    diffs.push('t:a:tenant', 'tenant', { ...none, leaves: ['bob'] });
    diffs.push('t:a:tenant', 'tenant', { ...none, updates: [member('cy', 1)] });
    diffs.push('t:a:workflow:w', 'workflow:w', { ...none, joins: [member('ada')] });
    diffs.flush();
    expect(sent).toHaveLength(2);
    expect(sent[0]).toEqual({
      room: 't:a:tenant',
      // ada joined and changed state within the window: one join with the final view; eve came and went: nothing.
      diff: { room: 'tenant', joins: [member('ada', 2, { status: 'editing' })], leaves: ['bob'], updates: [member('cy', 1)] },
    });
    expect(sent[1]?.diff).toEqual({ room: 'workflow:w', joins: [member('ada')], leaves: [], updates: [] });
  });

  it('flushes by itself after the window and sends nothing for an empty change', async () => {
    const { io, sent } = fakeIo();
    const diffs = new PresenceDiffs(io);
    diffs.push('t:a:tenant', 'tenant', { joins: [], leaves: [], updates: [] });
    diffs.push('t:a:tenant', 'tenant', { joins: [member('ada')], leaves: [], updates: [] });
    expect(sent).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 120));
    expect(sent).toHaveLength(1);
  });
});
