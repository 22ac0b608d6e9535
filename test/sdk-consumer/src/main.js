// @ts-check
/**
 * An application of @fluxo/sdk, written as its users would: against the installed package only.
 *   node src/main.js <fluxo url> <admin token> <viewer token>
 * Prints one JSON line of what it saw and exits 0, or prints the failure and exits 1.
 */
import { connect, FluxoError, FluxoHttp, PROTOCOL_VERSION } from '@fluxo/sdk';

const [url, adminToken, viewerToken] = process.argv.slice(2);
if (!url || !adminToken || !viewerToken) {
  console.error('usage: node src/main.js <fluxo url> <admin token> <viewer token>');
  process.exit(64);
}

/**
 * The error a call rejected with; fails when it resolved.
 * @param {Promise<unknown>} call
 * @returns {Promise<FluxoError>}
 */
async function refusal(call) {
  try {
    await call;
  } catch (err) {
    if (err instanceof FluxoError) return err;
    throw err;
  }
  throw new Error('the call was expected to fail');
}

/**
 * Resolves once `check` is true, polling; rejects after `ms`.
 * @param {() => boolean} check
 * @param {string} what
 */
async function until(check, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const http = new FluxoHttp({ url, token: adminToken });
const client = connect({ url, token: adminToken, transports: ['websocket'] });
try {
  const workflow = await http.createWorkflow({
    name: 'Consumer board',
    stages: ['todo', 'doing', 'done'],
    transitions: { todo: ['doing'], doing: ['done'] },
  });
  await client.whenConnected(5000);

  /** @type {import('@fluxo/sdk').FluxoEvent[]} */
  const events = [];
  const stop = client.subscribe(`workflow:${workflow.id}`, (event) => events.push(event));
  await stop.ready;

  // Created through the client's own HTTP helper (its credentials), moved through a standalone one.
  const card = await client.http.createProcess({ workflowId: workflow.id, title: 'From the tarball' });
  const moved = await http.transition(card.id, 'doing', { expectedVersion: card.version });
  await until(() => events.some((e) => e.type === 'process.transitioned' && e.processId === card.id), 'the transition event');

  // The same typed errors on both sides.
  const stale = await refusal(http.transition(card.id, 'done', { expectedVersion: card.version }));
  const notAllowed = await refusal(client.transition(card.id, 'todo'));
  const forbidden = await refusal(new FluxoHttp({ url, token: viewerToken }).createProcess({ workflowId: workflow.id, title: 'No' }));
  const missing = await refusal(http.getProcess('no-such-process'));

  // @ts-expect-error — a stage is a string: the package's declarations are what checks this.
  const typed = () => http.transition(card.id, 42);
  void typed;

  const page = await http.listProcesses({ workflowId: workflow.id, total: true });
  const history = await http.events({ room: `process:${card.id}` });
  await stop();

  console.log(
    JSON.stringify({
      sdkProtocol: PROTOCOL_VERSION,
      serverProtocol: client.session?.protocol ?? null,
      delivered: events.map((e) => ({ type: e.type, processId: e.processId, toStage: e.toStage })),
      moved: { stage: moved.process.stage, version: moved.process.version, eventId: moved.event.id },
      errors: [stale, notAllowed, forbidden, missing].map((e) => ({ code: e.code, status: e.status ?? null, retryable: e.retryable })),
      currentVersion: /** @type {{ version?: number } | undefined} */ (stale.body?.current)?.version ?? null,
      page: { ids: page.items.map((p) => p.id), total: page.total ?? null, nextCursor: page.nextCursor },
      history: history.events.map((e) => e.type),
      cardId: card.id,
    }),
  );
  client.close();
} catch (err) {
  console.error(err);
  client.close();
  process.exit(1);
}
