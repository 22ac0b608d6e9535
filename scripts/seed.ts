/**
 * Fills a tenant with demo data through the HTTP API, so a newcomer sees a living board:
 *   npm run seed -- --tenant acme [--url http://localhost:8080] [--processes 1000]
 * Tokens are minted with JWT_SECRET (else the development secret, as `npm run token`). Workflows
 * that already exist (by name) are left alone, so running it twice adds nothing.
 */
import { parseArgs } from 'node:util';
import { resolveJwtSecret } from '../server/auth/dev-secret.js';
import { mintToken } from '../server/auth/mint.js';
import { DEMO_USERS } from '../server/http/dev-login.js';
import type { ErrorBody } from '../shared/errors.js';
import type { Process, Workflow } from '../shared/protocol.js';
import type { CreateWorkflowInput } from '../shared/schemas.js';
import { DEFAULT_FLUXO_URL, fetchFailure, fluxoUrl, requireNode, UnreachableError } from './fluxo-url.js';

interface DemoWorkflow {
  input: CreateWorkflowInput;
  titles: string[];
  /** Processes beyond the named ones, to show a board with thousands of cards. */
  bulk?: boolean;
}

const forward = (stages: string[]): Record<string, string[]> =>
  Object.fromEntries(stages.map((s, i) => [s, [stages[i + 1], stages[i - 1]].filter((x): x is string => !!x)]));

const WORKFLOWS: DemoWorkflow[] = [
  {
    input: {
      name: 'Customer onboarding',
      stages: ['lead', 'qualified', 'contract', 'onboarding', 'live'],
      transitions: forward(['lead', 'qualified', 'contract', 'onboarding', 'live']),
    },
    titles: ['Initech', 'Globex', 'Umbrella', 'Hooli', 'Stark Industries', 'Wayne Enterprises', 'Soylent', 'Vandelay Industries'],
  },
  {
    input: {
      name: 'Bug triage',
      stages: ['new', 'triaged', 'in progress', 'review', 'done'],
      transitions: { new: ['triaged'], triaged: ['in progress', 'new'], 'in progress': ['review'], review: ['done', 'in progress'] },
    },
    titles: ['Login button unresponsive', 'CSV export drops last row', 'Dark mode contrast', 'Timezone off by one', 'Slow search'],
  },
  {
    input: {
      name: 'Support tickets',
      stages: ['open', 'waiting', 'solved'],
      transitions: { open: ['waiting', 'solved'], waiting: ['open', 'solved'], solved: ['open'] },
    },
    titles: [],
    bulk: true,
  },
];

const HELP = `Usage: npm run seed -- [--tenant acme] [--url URL] [--processes 1000]

Fills a tenant with demo workflows and processes through the HTTP API of a running node.
  --tenant T         tenant to fill (default acme)
  --url URL          the node (default $FLUXO_URL, else ${DEFAULT_FLUXO_URL})
  --processes N      cards on the "Support tickets" board (default 1000)
  -h, --help
Tokens are minted with JWT_SECRET, else the development secret of \`npm start\`. Workflows that
already exist (by name) are skipped, so running it twice adds nothing.
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tenant: { type: 'string', default: 'acme' },
      url: { type: 'string' },
      processes: { type: 'string', default: '1000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const base = fluxoUrl(values.url);
  await requireNode(base);
  const tenant = values.tenant;
  const bulk = Number(values.processes);
  if (!Number.isInteger(bulk) || bulk < 0) throw new Error('--processes must be a whole number');
  const secret = resolveJwtSecret(process.env);
  if (!secret) throw new Error('JWT_JWKS_URL is set: seed needs JWT_SECRET to mint its tokens');
  const mint = (u: (typeof DEMO_USERS)[number]) =>
    mintToken({
      sub: u.id,
      tid: tenant,
      role: u.role,
      name: u.name,
      ttlS: 3600,
      secret,
      issuer: process.env.JWT_ISSUER,
      audience: process.env.JWT_AUDIENCE,
    });
  const admin = await mint(DEMO_USERS.find((u) => u.role === 'admin')!);
  const editors = await Promise.all(DEMO_USERS.filter((u) => u.role === 'editor').map(async (u) => ({ user: u, token: await mint(u) })));

  const existing = await call<Workflow[]>(base, 'GET', '/api/workflows', admin);
  for (const demo of WORKFLOWS) {
    if (existing.some((w) => w.name === demo.input.name)) {
      console.log(`seed: "${demo.input.name}" exists, skipped`);
      continue;
    }
    const wf = await call<Workflow>(base, 'POST', '/api/workflows', admin, demo.input);
    const titles = demo.bulk ? Array.from({ length: bulk }, (_, i) => `Ticket #${1000 + i}`) : demo.titles;
    // Each editor creates its share in parallel: the write budget is per user.
    const created: Process[] = [];
    await Promise.all(
      editors.map(async ({ token }, e) => {
        for (let i = e; i < titles.length; i += editors.length) {
          created.push(
            await call<Process>(base, 'POST', '/api/processes', token, {
              workflowId: wf.id,
              title: titles[i],
              assignee: editors[(i + 1) % editors.length]!.user.id,
            }),
          );
        }
      }),
    );
    // Move some cards along so the board and the event feed are not all in the first column.
    const moves = created.slice(0, Math.min(created.length, 60));
    await Promise.all(
      editors.map(async ({ token }, e) => {
        for (let i = e; i < moves.length; i += editors.length) {
          const p = moves[i]!;
          const steps = i % wf.stages.length;
          let stage = p.stage;
          for (let s = 0; s < steps; s++) {
            // Forward when the workflow allows it: the next stage in order.
            const next = wf.stages[wf.stages.indexOf(stage) + 1];
            const to = next && wf.transitions[stage]?.includes(next) ? next : undefined;
            if (!to) break;
            await call(base, 'POST', `/api/processes/${p.id}/transition`, token, { to });
            stage = to;
          }
        }
      }),
    );
    console.log(`seed: "${wf.name}" with ${created.length} processes`);
  }
  console.log(`seed: tenant ${tenant} ready — open ${base}/ and pick a demo user`);
}

/** One API call; waits out 429s (the seed is a burst of writes) and throws on other errors. */
async function call<T>(base: string, method: string, path: string, token: string, body?: unknown): Promise<T> {
  for (;;) {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch((err: unknown) => {
      throw new UnreachableError(`${method} ${base}${path}: ${fetchFailure(err)}`);
    });
    const json = (await res.json().catch(() => ({}))) as { data?: T; error?: ErrorBody };
    if (res.status === 429) {
      await new Promise((r) => setTimeout(r, json.error?.retryAfterMs ?? 500));
      continue;
    }
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.error?.code ?? ''} ${json.error?.message ?? ''}`);
    return json.data as T;
  }
}

main().catch((err: unknown) => {
  console.error(`seed: ${err instanceof Error ? err.message : String(err)}`);
  if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS_')) {
    process.stderr.write(HELP);
    process.exit(64);
  }
  process.exit(err instanceof UnreachableError ? UnreachableError.EXIT_CODE : 1);
});
