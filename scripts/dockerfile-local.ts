/**
 * Builds the stages of a Dockerfile on this machine, without Docker: each stage is a directory that
 * stands for the image's file system, COPY copies from the build context (filtered by .dockerignore)
 * or from an earlier stage, RUN runs in the stage's WORKDIR with the stage's ENV, and the final
 * stage's CMD, HEALTHCHECK, USER and STOPSIGNAL are returned for the caller to run. The machines CI
 * uses cannot run Docker; this proves what the Dockerfile itself produces, not a hand-made copy of it
 * that could drift (scripts/smoke-dist.ts runs the result).
 *
 * The Dockerfile is read by dockerfile-ast (the parser of dockerfile-utils) and .dockerignore by
 * @balena/dockerignore (a port of Docker's own matcher). Only the instructions and flags Fluxo's
 * Dockerfile uses are understood; anything else is an error, not skipped: a Dockerfile change this
 * cannot follow must fail here rather than pass unchecked.
 * The base image is not pulled: FROM node:<major>-… requires this machine's Node to have that major.
 */
import { spawn } from 'node:child_process';
import { chmod, cp, mkdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, posix, relative } from 'node:path';
// CommonJS typed as `export default`: ESM gets module.exports, and the package sets the factory on its .default too.
import dockerignoreModule from '@balena/dockerignore';
import { Copy, DockerfileParser, type Env, type From, type Healthcheck, ModifiableInstruction, Run } from 'dockerfile-ast';

export interface Stage {
  name: string;
  index: number;
  from: string;
  /** The directory that stands for this stage's `/`. */
  root: string;
  workdir: string;
  env: Record<string, string>;
  user?: string;
  expose: string[];
  cmd?: string[];
  healthcheck?: { options: Record<string, string>; cmd: string[] };
  stopSignal: string;
}

/**
 * `excluded(relativePath)` for a .dockerignore. Case-sensitive, as Docker is on Linux (the library
 * ignores case unless told otherwise).
 */
export function dockerignore(text: string): (rel: string) => boolean {
  const rules = dockerignoreModule.default({ ignorecase: false }).add(text);
  return (rel) => rules.ignores(rel);
}

/** The flags each instruction may carry; any other (RUN --mount, COPY --chown, FROM --platform…) is an error. */
const FLAGS: Record<string, string[]> = {
  COPY: ['from'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

// Docker expands $VAR in these from ENV (and ARG); not done here, so not accepted either.
const SUBSTITUTED = new Set(['FROM', 'WORKDIR', 'ENV', 'COPY', 'USER', 'EXPOSE', 'STOPSIGNAL']);

/**
 * Docker reads exec form as JSON (anything else is shell form), so this does too: dockerfile-ast's
 * getJSONStrings() is made for editors and, in 0.7.1, drops the spaces inside a string.
 */
function execForm(args: string, what: string): string[] {
  // Shell form would make /bin/sh PID 1: it does not pass SIGTERM on, so node would never drain.
  if (!args.startsWith('[')) throw new Error(`${what} must be in exec form (a JSON array): ${args}`);
  const argv = JSON.parse(args) as unknown;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string'))
    throw new Error(`${what}: not a list of strings`);
  return argv as string[];
}

/** The PATH of the official node image, behind the Node that stands in for the image's. */
export const IMAGE_PATH = `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

export interface BuildOptions {
  context: string;
  dockerfile?: string;
  /** Where the stage directories go (one per stage, named after it). */
  out: string;
  /** Added to every RUN's environment, e.g. npm settings of this machine that Docker would not have. */
  runEnv?: Record<string, string>;
  log?: (line: string) => void;
}

const inStage = (stage: Stage, p: string) => (p.startsWith('/') ? join(stage.root, p) : join(stage.root, stage.workdir, p));

export async function buildStages(opts: BuildOptions): Promise<Stage[]> {
  const log = opts.log ?? (() => {});
  const file = opts.dockerfile ?? join(opts.context, 'Dockerfile');
  const instructions = DockerfileParser.parse(await readFile(file, 'utf8')).getInstructions();
  const excluded = dockerignore(await readFile(join(opts.context, '.dockerignore'), 'utf8').catch(() => ''));
  const stages: Stage[] = [];
  const localMajor = process.versions.node.split('.')[0];
  await chmod(opts.out, 0o755);

  for (const ins of instructions) {
    const where = `Dockerfile line ${ins.getRange().start.line + 1}`;
    const keyword = ins.getKeyword();
    // The arguments after any flags, continuation lines joined and comments dropped.
    const args = ins.getArgumentsContent() ?? '';
    const stage = stages.at(-1);
    if (keyword !== 'FROM' && !stage) throw new Error(`${where}: ${keyword} before FROM`);
    const started = Date.now();
    if (SUBSTITUTED.has(keyword) && ins.toString().includes('$'))
      throw new Error(`${where}: variables in ${keyword} are not supported here`);
    if ((ins instanceof Run || ins instanceof Copy) && ins.getHeredocs().length > 0)
      throw new Error(`${where}: ${keyword} with a here-document is not supported here`);
    const flags: Record<string, string> = {};
    for (const flag of ins instanceof ModifiableInstruction ? ins.getFlags() : []) {
      const value = flag.getValue();
      if (!FLAGS[keyword]?.includes(flag.getName()) || value === null)
        throw new Error(`${where}: ${keyword} --${flag.getName()} is not supported here`);
      flags[flag.getName()] = value;
    }
    // dockerfile-ast makes each keyword's class (From for FROM…), so the casts below hold.
    switch (keyword) {
      case 'FROM': {
        const from = ins as From;
        const name = from.getBuildStage();
        const base = from.getImage() ?? '';
        if (ins.getArguments().length !== (name ? 3 : 1)) throw new Error(`${where}: FROM <image> [AS <name>], not FROM ${args}`);
        const major = /^node:(\d+)\b/.exec(base)?.[1];
        if (!major) throw new Error(`${where}: FROM ${base}: only node:<major>-… images can be stood in for`);
        if (major !== localMajor) throw new Error(`${where}: FROM ${base} needs Node ${major} here, this is ${process.version}`);
        const index = stages.length;
        const root = join(opts.out, name ?? String(index));
        await mkdir(root, { recursive: true });
        // Readable by the unprivileged user the final stage runs as (mkdtemp makes 0700 folders).
        await chmod(root, 0o755);
        stages.push({ name: name ?? String(index), index, from: base, root, workdir: '/', env: {}, expose: [], stopSignal: 'SIGTERM' });
        break;
      }
      case 'WORKDIR':
        if (!args.startsWith('/')) throw new Error(`${where}: WORKDIR must be absolute`);
        stage!.workdir = args;
        await mkdir(inStage(stage!, args), { recursive: true });
        break;
      case 'ENV':
        for (const p of (ins as Env).getProperties()) {
          // Docker deprecates the legacy `ENV KEY value` form (check LegacyKeyValueFormat).
          if (p.getAssignmentOperator() !== '=') throw new Error(`${where}: ENV needs KEY=value`);
          stage!.env[p.getName()] = p.getValue() ?? '';
        }
        break;
      case 'COPY':
        await copy(ins as Copy, flags.from, stage!, stages, opts.context, excluded, where);
        break;
      case 'RUN':
        if (args.startsWith('[')) throw new Error(`${where}: RUN in exec form is not supported here`);
        if (stage!.user) throw new Error(`${where}: RUN after USER is not supported here`);
        await sh(
          args,
          inStage(stage!, stage!.workdir),
          { PATH: IMAGE_PATH, HOME: process.env.HOME ?? '/root', ...stage!.env, ...opts.runEnv },
          where,
        );
        break;
      case 'USER':
        stage!.user = args;
        break;
      case 'EXPOSE':
        stage!.expose.push(...ins.getArguments().map((a) => a.getValue()));
        break;
      case 'STOPSIGNAL':
        stage!.stopSignal = args;
        break;
      case 'CMD':
        stage!.cmd = execForm(args, `${where}: CMD`);
        break;
      case 'HEALTHCHECK':
        if ((ins as Healthcheck).getSubcommand()?.getValue().toUpperCase() !== 'CMD') throw new Error(`${where}: HEALTHCHECK needs CMD`);
        stage!.healthcheck = { options: flags, cmd: execForm(args.slice('CMD'.length).trim(), `${where}: HEALTHCHECK CMD`) };
        break;
      default:
        throw new Error(`${where}: ${keyword} is not understood by scripts/dockerfile-local.ts (teach it there)`);
    }
    const text = ins.toString();
    log(
      `[${stages.at(-1)!.name}] ${text.length > 100 ? `${text.slice(0, 97)}...` : text}  (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
  }
  return stages;
}

async function copy(
  ins: Copy,
  fromName: string | undefined,
  stage: Stage,
  stages: Stage[],
  context: string,
  excluded: (rel: string) => boolean,
  where: string,
): Promise<void> {
  if (ins.getArgumentsContent()?.startsWith('[')) throw new Error(`${where}: COPY in JSON form is not supported here`);
  const words = ins.getArguments().map((a) => a.getValue());
  if (words.length < 2) throw new Error(`${where}: COPY needs a source and a destination`);
  const dest = words.at(-1)!;
  const sources = words.slice(0, -1);
  const from = fromName === undefined ? undefined : stages.find((s) => s.name === fromName || String(s.index) === fromName);
  if (fromName !== undefined && (!from || from === stage))
    throw new Error(`${where}: COPY --from=${fromName}: no earlier stage of that name`);
  const intoDir = dest.endsWith('/') || sources.length > 1;
  for (const src of sources) {
    if (/[*?[]/.test(src)) throw new Error(`${where}: COPY with wildcards is not supported here`);
    let path: string;
    let filter: ((p: string) => boolean) | undefined;
    if (from) {
      // COPY --from paths are in the other stage's file system, from its root.
      path = join(from.root, src);
    } else {
      const rel = posix.normalize(src).replace(/^\/+|\/+$/g, '');
      if (rel === '..' || rel.startsWith('../')) throw new Error(`${where}: COPY ${src} is outside the build context`);
      // '.' and '' (the context itself) are never excluded, whatever `*` would say of them.
      if (rel !== '.' && excluded(rel)) throw new Error(`${where}: COPY ${src}: excluded by .dockerignore`);
      path = join(context, rel);
      filter = (p) => {
        const r = relative(context, p);
        return r === '' || !excluded(r);
      };
    }
    const st = await stat(path).catch(() => undefined);
    if (!st) throw new Error(`${where}: COPY ${src}: not found`);
    // A folder's contents go into the destination; a file goes into it when it is a folder, else becomes it.
    const target = st.isDirectory() ? inStage(stage, dest) : intoDir ? join(inStage(stage, dest), basename(path)) : inStage(stage, dest);
    await mkdir(st.isDirectory() ? target : dirname(target), { recursive: true });
    // verbatimSymlinks: node_modules/.bin links stay relative, as Docker copies them, instead of
    // pointing back into the stage they came from.
    await cp(path, target, { recursive: true, verbatimSymlinks: true, ...(filter ? { filter } : {}) });
  }
}

function sh(script: string, cwd: string, env: Record<string, string>, where: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', script], { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${where}: RUN failed (${signal ?? `exit ${code}`}): ${script}`)),
    );
  });
}
