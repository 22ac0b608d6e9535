/**
 * Prints a signed HS256 JWT for development and tests.
 *   npm run token -- --sub u1 --tid acme --role editor --ttl 1h [--name "Ada"] [--secret …] [--iss …] [--aud …]
 * The secret defaults to JWT_SECRET, else the built-in development secret (not in production).
 */
import { parseArgs } from 'node:util';
import { resolveJwtSecret } from '../server/auth/dev-secret.js';
import { mintToken } from '../server/auth/mint.js';
import { ROLES, type Role } from '../shared/protocol.js';

const USAGE = 'usage: npm run token -- --sub USER --tid TENANT --role viewer|editor|admin [--ttl 1h] [--name NAME] [--secret S]';
const HELP = `Usage: npm run token -- --sub USER --tid TENANT --role viewer|editor|admin [options]

Prints a signed HS256 JWT (for development and tests) on stdout.
  --sub USER         user id (required)
  --tid TENANT       tenant id (required)
  --role ROLE        viewer, editor or admin (required)
  --ttl T            lifetime: 90, 90s, 15m, 1h, 7d (default 1h)
  --name NAME        display name
  --secret S         HS256 secret (default $JWT_SECRET, else the development secret of \`npm start\`)
  --iss ISS          issuer claim (default $JWT_ISSUER)
  --aud AUD          audience claim (default $JWT_AUDIENCE)
  -h, --help
`;
const UNIT_S = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `90`, `90s`, `15m`, `1h`, `7d` → seconds. */
function parseTtl(value: string): number {
  const match = /^(\d+)([smhd])?$/.exec(value.trim());
  if (!match) throw new Error(`--ttl "${value}" is not a number with an optional s/m/h/d unit`);
  const seconds = Number(match[1]) * UNIT_S[(match[2] ?? 's') as keyof typeof UNIT_S];
  if (seconds <= 0) throw new Error('--ttl must be positive');
  return seconds;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sub: { type: 'string' },
      tid: { type: 'string' },
      role: { type: 'string' },
      ttl: { type: 'string', default: '1h' },
      name: { type: 'string' },
      secret: { type: 'string' },
      iss: { type: 'string' },
      aud: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (!values.sub || !values.tid || !values.role) throw new Error(`--sub, --tid and --role are required. ${USAGE}`);
  if (!(ROLES as readonly string[]).includes(values.role)) throw new Error(`--role must be one of ${ROLES.join(', ')}`);
  const secret = values.secret ?? resolveJwtSecret(process.env);
  if (!secret) throw new Error('JWT_JWKS_URL is set and JWT_SECRET is not: pass --secret to sign an HS256 token');

  const token = await mintToken({
    sub: values.sub,
    tid: values.tid,
    role: values.role as Role,
    ...(values.name !== undefined ? { name: values.name } : {}),
    ttlS: parseTtl(values.ttl),
    secret,
    issuer: values.iss ?? process.env.JWT_ISSUER,
    audience: values.aud ?? process.env.JWT_AUDIENCE,
  });
  process.stdout.write(`${token}\n`);
}

main().catch((err: unknown) => {
  // zod errors carry a JSON list of issues; show the first one's message only.
  const issues = (err as { issues?: { message: string }[] }).issues;
  const message = issues?.[0]?.message ?? (err instanceof Error ? err.message : String(err));
  process.stderr.write(`token: ${message}\n`);
  if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS_')) process.stderr.write(HELP);
  process.exit(2);
});
