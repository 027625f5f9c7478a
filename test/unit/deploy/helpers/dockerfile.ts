/**
 * A small Dockerfile reader: enough to know, for each build stage, the image configuration it
 * ends with (ENV, USER, EXPOSE, ENTRYPOINT, CMD, LABEL) and what it runs and copies. Stages that
 * start FROM an earlier stage inherit its configuration; a stage FROM an outside image starts
 * empty (what the base image sets is unknown here).
 */
import { readRepoText } from './repo.js';

export interface Instruction {
  keyword: string;
  args: string;
}

export interface Stage {
  name: string | undefined;
  /** FROM's argument with global ARG defaults substituted. */
  from: string;
  instructions: Instruction[];
  env: Map<string, string>;
  labels: Map<string, string>;
  user: string | undefined;
  exposed: string[];
  entrypoint: string[] | undefined;
  cmd: string[] | undefined;
}

export interface Dockerfile {
  globalArgs: Map<string, string>;
  stages: Stage[];
}

/** Joins continuation lines and drops comments (Docker drops them inside continuations too). */
function logicalLines(text: string): string[] {
  const lines: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (trimmed === '' && current === '')) continue;
    if (trimmed.endsWith('\\')) {
      current += `${trimmed.slice(0, -1)} `;
      continue;
    }
    current += trimmed;
    if (current.trim() !== '') lines.push(current.trim());
    current = '';
  }
  if (current.trim() !== '') lines.push(current.trim());
  return lines;
}

function unquote(value: string): string {
  return value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value;
}

/** `KEY=value KEY2="quoted value"` pairs (ENV, LABEL, ARG). */
function keyValues(args: string): [string, string][] {
  return [...args.matchAll(/([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map((m) => [m[1] as string, unquote(m[2] as string)]);
}

function substitute(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (whole, name: string) => vars.get(name) ?? whole);
}

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of logicalLines(text)) {
    const match = /^(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const keyword = (match[1] as string).toUpperCase();
    const args = match[2] as string;
    const stage = stages.at(-1);
    if (keyword === 'FROM') {
      const [image = '', as, name] = args.split(/\s+/);
      const from = substitute(image, globalArgs);
      const parent = stages.find((s) => s.name === from);
      stages.push({
        name: as?.toUpperCase() === 'AS' ? name : undefined,
        from,
        instructions: [],
        env: new Map(parent?.env),
        labels: new Map(parent?.labels),
        user: parent?.user,
        exposed: [...(parent?.exposed ?? [])],
        entrypoint: parent?.entrypoint,
        cmd: parent?.cmd,
      });
      continue;
    }
    if (stage === undefined) {
      if (keyword === 'ARG') for (const [k, v] of keyValues(args)) globalArgs.set(k, v);
      continue;
    }
    stage.instructions.push({ keyword, args });
    if (keyword === 'ENV') for (const [k, v] of keyValues(args)) stage.env.set(k, v);
    else if (keyword === 'LABEL') for (const [k, v] of keyValues(args)) stage.labels.set(k, v);
    else if (keyword === 'USER') stage.user = args.trim();
    else if (keyword === 'EXPOSE') stage.exposed.push(...args.split(/\s+/));
    else if (keyword === 'ENTRYPOINT') stage.entrypoint = JSON.parse(args) as string[];
    else if (keyword === 'CMD') stage.cmd = JSON.parse(args) as string[];
  }
  return { globalArgs, stages };
}

export function readDockerfile(file: string): Dockerfile {
  return parseDockerfile(readRepoText(file));
}

export function stageNamed(dockerfile: Dockerfile, name: string): Stage {
  const stage = dockerfile.stages.find((s) => s.name === name);
  if (stage === undefined) throw new Error(`no stage named ${name}`);
  return stage;
}

/** The image's USER of the default (last) stage as numbers; throws unless it is numeric. */
export function imageUser(file: string): { uid: number; gid: number } {
  const user = readDockerfile(file).stages.at(-1)?.user ?? '';
  const match = /^(\d+)(?::(\d+))?$/.exec(user);
  if (!match) throw new Error(`${file}: USER "${user}" is not numeric`);
  return { uid: Number(match[1]), gid: Number(match[2] ?? match[1]) };
}

/** The stage and the stages it is built FROM, oldest first (an outside image ends the chain). */
export function stageChain(dockerfile: Dockerfile, stage: Stage): Stage[] {
  const parent = dockerfile.stages.find((s) => s.name !== undefined && s.name === stage.from && s !== stage);
  return parent ? [...stageChain(dockerfile, parent), stage] : [stage];
}

export interface Copy {
  /** The stage named by `--from=`, or undefined for the build context. */
  from: string | undefined;
  /** Sources as written, with the stage's ARG defaults substituted. */
  sources: string[];
  /** Absolute path in the image: the destination resolved against WORKDIR. */
  destination: string;
  /** True when the destination is a folder that the sources go into (`./`, or several sources). */
  intoFolder: boolean;
}

/** Every COPY of a stage and of the stages it is built from, with WORKDIR and ARG applied. */
export function copiesOf(dockerfile: Dockerfile, stage: Stage): Copy[] {
  const copies: Copy[] = [];
  let workdir = '/';
  for (const s of stageChain(dockerfile, stage)) {
    const args = new Map<string, string>();
    for (const { keyword, args: text } of s.instructions) {
      if (keyword === 'ARG') for (const [k, v] of keyValues(text)) args.set(k, v);
      else if (keyword === 'WORKDIR') workdir = posixJoin(workdir, text.trim());
      else if (keyword === 'COPY') {
        const words = text.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const paths = words.filter((w) => !w.startsWith('--')).map((w) => substitute(w, args));
        const target = paths.pop() ?? '';
        copies.push({ from, sources: paths, destination: posixJoin(workdir, target), intoFolder: target.endsWith('/') || paths.length > 1 });
      }
    }
  }
  return copies;
}

/** The stage's final WORKDIR. */
export function workdirOf(dockerfile: Dockerfile, stage: Stage): string {
  let workdir = '/';
  for (const s of stageChain(dockerfile, stage)) {
    for (const { keyword, args } of s.instructions) if (keyword === 'WORKDIR') workdir = posixJoin(workdir, args.trim());
  }
  return workdir;
}

function posixJoin(base: string, path: string): string {
  const parts = (path.startsWith('/') ? path : `${base}/${path}`).split('/');
  const out: string[] = [];
  for (const p of parts) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return `/${out.join('/')}`;
}
