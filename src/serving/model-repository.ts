/**
 * The layout of the model repository, owned here alone (the registry and the model tools both
 * read it from this module): one folder per model under the repository, the folder name being
 * the model name. A model folder is laid out in one of two ways:
 *
 * - flat: `model.onnx` at its top, with optional `config.json` and labels file; one version,
 *   config.json's `version` (default "1");
 * - versioned (Triton's): version folders `1/`, `2/`, … each holding a `model.onnx`, with
 *   `config.json` and the labels file at the model's top. A version folder may hold its own
 *   `config.json` (which then replaces the model's, whole) or labels file (looked for in the
 *   version folder first, then in the model folder). The model's `config.json` may set a
 *   `version_policy` (version-policy.ts) choosing which versions are served.
 *
 * Rules:
 * - A model folder is a visible (not dot-prefixed) directory, or a symlink to one: Kubernetes
 *   volumes (ConfigMaps, projected volumes, some CSI drivers) present folders as symlinks, and
 *   Triton follows them too. Dot-prefixed entries are work in progress (staging folders of
 *   `model:fetch` and of the default model's copy, Kubernetes' `..data`), never models. The
 *   same holds for version folders inside a model folder.
 * - A version folder's name is a positive integer without leading zeros; other folders in a
 *   model folder are skipped, and said so (`ModelPlan.skipped`).
 * - A model folder with neither `model.onnx` nor a version folder is still a model folder, a
 *   broken one: loading it fails naming the missing file, rather than the repository silently
 *   serving without it. So is an empty version folder that the policy selects. One with both
 *   layouts at once is refused, as it is ambiguous.
 * - Every file of a model folder is read as a regular file within a size cap
 *   (repository-files.ts).
 */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, stat, type FileHandle } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { ModelConfigError, parseModelConfigFile, type ModelConfigFile } from './model-config.js';
import { openRegularFile, readRegularFile } from './repository-files.js';
import { DEFAULT_VERSION_POLICY, selectVersions, versionOfFolderName } from './version-policy.js';

export const MODEL_FILE = 'model.onnx';
export const CONFIG_FILE = 'config.json';
/** The labels file when `config.json` names none. */
export const LABELS_FILE = 'labels.txt';

/** A config.json is a few hundred bytes; 1 MiB leaves room for a long `description` or `source`. */
const CONFIG_MAX_BYTES = 1024 * 1024;
/** ImageNet-21k's ~21,800 class names take about 500 KB; 16 MiB is 30 times that, and little to hold. */
const LABELS_MAX_BYTES = 16 * 1024 * 1024;

/** A repository entry that is not taken for a model, and why. */
export interface SkippedEntry {
  readonly name: string;
  readonly reason: string;
  /** Hidden entries are skipped by design; the others are likely mistakes, worth a warning. */
  readonly hidden: boolean;
}

export interface RepositoryScan {
  /** Model folder names, sorted. */
  readonly models: readonly string[];
  readonly skipped: readonly SkippedEntry[];
}

/** Why the visible `entry` is not a model folder, or `undefined` if it is one. */
async function skipReason(repository: string, entry: Dirent): Promise<string | undefined> {
  if (entry.isDirectory()) return undefined;
  // stat follows symlinks.
  const info = await stat(join(repository, entry.name)).catch((err: NodeJS.ErrnoException) => err);
  const link = entry.isSymbolicLink();
  if (info instanceof Error) {
    if (link && info.code === 'ENOENT') return 'dangling symlink: its target does not exist';
    return `${link ? 'symlink that ' : ''}cannot be followed: ${info.message}`;
  }
  if (info.isDirectory()) return undefined;
  return link ? 'symlink to something other than a directory' : 'not a directory';
}

/**
 * The entries of the repository that are model folders (see the rules above). Everything else
 * is returned as skipped, with the reason. Errors: `readdir`'s, for a repository that cannot
 * be listed.
 */
export async function scanRepository(repository: string): Promise<RepositoryScan> {
  const models: string[] = [];
  const skipped: SkippedEntry[] = [];
  for (const entry of await readdir(repository, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) {
      skipped.push({ name: entry.name, reason: 'hidden: dot-prefixed entries are work in progress, never models', hidden: true });
      continue;
    }
    const reason = await skipReason(repository, entry);
    if (reason === undefined) models.push(entry.name);
    else skipped.push({ name: entry.name, reason, hidden: false });
  }
  models.sort();
  skipped.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { models, skipped };
}

/** What one version of a model holds, read and checked; the graph itself is onnxruntime's to read. */
export interface ModelFolder {
  /** `model.onnx`, known to be a regular file; onnxruntime opens it again by this path. */
  readonly modelPath: string;
  /** The `config.json` that applies, whether or not it exists (messages about config fields name it). */
  readonly configPath: string;
  /** The labels file found (config.json's `labels`, else labels.txt), or where it was looked for first. */
  readonly labelsPath: string;
  /** `{}` when no config.json applies. */
  readonly config: ModelConfigFile;
  /** One class name a line, trimmed, trailing blank lines dropped; `undefined` without a labels file. */
  readonly labels: readonly string[] | undefined;
  /** Of model.onnx's bytes, hex. */
  readonly sha256: string;
}

/** How a model folder is laid out, and which versions of it are to be served. */
export interface ModelPlan {
  readonly dir: string;
  readonly layout: 'flat' | 'versioned';
  /** The versions to serve, highest first: the policy's choice, or the flat layout's one. */
  readonly versions: readonly string[];
  /** Every version folder present (versioned layout), ascending; the flat layout's one version. */
  readonly available: readonly string[];
  /** Versioned layout: entries of the model folder that look like version folders but are not, and why; flat: none. */
  readonly skipped: readonly SkippedEntry[];
  /** The model folder's own config.json, whether or not it exists, and what it holds (`{}` if not). */
  readonly configPath: string;
  readonly config: ModelConfigFile;
  /** True when `config` came from a load request (`readModelPlan`'s override), which then applies to every version. */
  readonly configOverridden: boolean;
}

/** A config given in place of the model's config.json (the repository API's `parameters.config`). */
export interface ConfigOverride {
  readonly config: ModelConfigFile;
  /** What messages about its fields name as the file, e.g. `load request parameters.config`. */
  readonly source: string;
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

async function sha256Of(file: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of file.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * model.onnx, open, once it is known to be a regular file (see repository-files.ts). It has no
 * size cap: a regular file's size is finite, and onnxruntime refuses what it cannot load.
 */
async function openModelFile(modelPath: string): Promise<FileHandle> {
  try {
    return await openRegularFile(modelPath);
  } catch (err) {
    if (err instanceof ModelConfigError) throw err;
    if (isMissing(err)) throw new ModelConfigError(modelPath, undefined, `is missing: ${MISSING_MODEL}`);
    throw new ModelConfigError(modelPath, undefined, `cannot be read: ${(err as Error).message}`);
  }
}

const MISSING_MODEL = 'every model folder needs a model.onnx, or version folders (1/, 2/, …) each holding one';

/** The config in `file`, or `undefined` when there is none. */
async function readConfig(file: string): Promise<ModelConfigFile | undefined> {
  let text: string;
  try {
    text = (await readRegularFile(file, CONFIG_MAX_BYTES)).toString('utf8');
  } catch (err) {
    if (err instanceof ModelConfigError) throw err;
    if (isMissing(err)) return undefined;
    throw new ModelConfigError(file, undefined, `cannot be read: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ModelConfigError(file, undefined, `is not valid JSON: ${(err as Error).message}`);
  }
  return parseModelConfigFile(raw, file);
}

/**
 * The labels file `config` names (else labels.txt), looked for in each of `dirs` in turn; each
 * candidate must lie inside the folder it is looked for in.
 */
async function readLabels(dirs: readonly string[], configPath: string, config: ModelConfigFile): Promise<{ path: string; labels: string[] | undefined }> {
  const name = config.labels ?? LABELS_FILE;
  let first: string | undefined;
  for (const dir of dirs) {
    const path = resolve(dir, name);
    if (!path.startsWith(resolve(dir) + sep)) {
      throw new ModelConfigError(configPath, 'labels', `must name a file inside the model folder, got ${JSON.stringify(name)}`);
    }
    first ??= path;
    let text: string;
    try {
      text = (await readRegularFile(path, LABELS_MAX_BYTES)).toString('utf8');
    } catch (err) {
      if (err instanceof ModelConfigError) throw err;
      if (isMissing(err) && dir !== dirs[dirs.length - 1]) continue;
      if (config.labels === undefined) {
        if (isMissing(err)) return { path: first, labels: undefined };
        throw new ModelConfigError(path, undefined, `cannot be read: ${(err as Error).message}`);
      }
      throw new ModelConfigError(configPath, 'labels', `names ${first}, which cannot be read: ${(err as Error).message}`);
    }
    const lines = text.split(/\r?\n/);
    while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
    return { path, labels: lines.map((l) => l.trim()) };
  }
  return { path: first!, labels: undefined };
}

/** The version folders among a model folder's entries, and the folders that are not versions. */
async function scanVersions(dir: string, entries: readonly Dirent[]): Promise<{ versions: number[]; skipped: SkippedEntry[] }> {
  const versions: number[] = [];
  const skipped: SkippedEntry[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) {
      skipped.push({ name: entry.name, reason: 'hidden: dot-prefixed entries are work in progress, never versions', hidden: true });
      continue;
    }
    // Files beside the version folders (config.json, labels, a README) are the model's own.
    if ((await skipReason(dir, entry)) !== undefined) continue;
    const version = versionOfFolderName(entry.name);
    if (version === undefined)
      skipped.push({ name: entry.name, reason: 'not a version folder: its name is not a positive integer (1, 2, …, no leading zeros)', hidden: false });
    else versions.push(version);
  }
  versions.sort((a, b) => a - b);
  skipped.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { versions, skipped };
}

/**
 * Reads how the model folder `dir` is laid out and which versions its policy serves.
 * Fails with a `ModelConfigError` naming the file (and field) at fault: no model.onnx and no
 * version folder, both layouts at once, an invalid config.json, a policy field where it does
 * not apply, a `specific` version that is not there. Other errors: `readdir`'s.
 */
export async function readModelPlan(dir: string, override?: ConfigOverride): Promise<ModelPlan> {
  const entries = await readdir(dir, { withFileTypes: true });
  const configPath = override?.source ?? join(dir, CONFIG_FILE);
  const configOverridden = override !== undefined;
  const { versions, skipped } = await scanVersions(dir, entries);
  const hasModelFile = entries.some((e) => e.name === MODEL_FILE);
  if (hasModelFile && versions.length > 0) {
    throw new ModelConfigError(
      dir,
      undefined,
      `holds both ${MODEL_FILE} and version folders (${versions.join(', ')}): use one layout, e.g. move ${MODEL_FILE} into a version folder`,
    );
  }
  if (!hasModelFile && versions.length === 0) throw new ModelConfigError(join(dir, MODEL_FILE), undefined, `is missing: ${MISSING_MODEL}`);
  const config = override?.config ?? (await readConfig(configPath)) ?? {};
  if (hasModelFile) {
    if (config.version_policy !== undefined) {
      throw new ModelConfigError(
        configPath,
        'version_policy',
        `chooses among version folders (${dir}/<version>/${MODEL_FILE}), but this model has ${MODEL_FILE} at its top (one version)`,
      );
    }
    const version = config.version ?? '1';
    // Folders beside a flat model.onnx are not candidate versions: nothing to say about them.
    return { dir, layout: 'flat', versions: [version], available: [version], skipped: [], configPath, config, configOverridden };
  }
  if (config.version !== undefined) {
    throw new ModelConfigError(configPath, 'version', `does not apply to a model with version folders: each version is its folder's name; remove it`);
  }
  const selected = selectVersions(config.version_policy ?? DEFAULT_VERSION_POLICY, versions, configPath, dir);
  return { dir, layout: 'versioned', versions: selected.map(String), available: versions.map(String), skipped, configPath, config, configOverridden };
}

/**
 * Reads one version of the model `plan` describes: its config (a version folder's own, else the
 * model's), its labels and model.onnx's sha256. Fails with a `ModelConfigError` naming the file
 * (and field) at fault: model.onnx missing or not a regular file, config.json or the labels file
 * not a regular file, too large, or invalid.
 */
export async function readModelVersion(plan: ModelPlan, version: string): Promise<ModelFolder> {
  const dir = plan.layout === 'flat' ? plan.dir : join(plan.dir, version);
  const modelPath = join(dir, MODEL_FILE);
  // onnxruntime opens model.onnx again by path, in the worker; the check here is what keeps a
  // FIFO or a device from reaching it.
  const modelFile = await openModelFile(modelPath);
  try {
    let config = plan.config;
    let configPath = plan.configPath;
    // An override replaces every config.json of the model, a version folder's too (as Triton's does).
    if (plan.layout === 'versioned' && !plan.configOverridden) {
      const ownPath = join(dir, CONFIG_FILE);
      const own = await readConfig(ownPath);
      if (own !== undefined) {
        if (own.version_policy !== undefined) {
          throw new ModelConfigError(ownPath, 'version_policy', `applies to the whole model: set it in ${plan.configPath}`);
        }
        if (own.version !== undefined && own.version !== version) {
          throw new ModelConfigError(
            ownPath,
            'version',
            `is ${JSON.stringify(own.version)}, but this is version folder ${version}; remove it (the folder's name is the version)`,
          );
        }
        config = own;
        configPath = ownPath;
      }
    }
    const { path: labelsPath, labels } = await readLabels(plan.layout === 'flat' ? [dir] : [dir, plan.dir], configPath, config);
    const sha256 = await sha256Of(modelFile);
    return { modelPath, configPath, labelsPath, config, labels, sha256 };
  } finally {
    await modelFile.close();
  }
}

/**
 * What decides how a version answers, as one string: model.onnx's sha256 and a digest of the
 * config and labels that apply. Two reads with the same fingerprint load the same model, so a
 * reload or a rescan keeps a served version whose fingerprint is unchanged.
 */
export function fingerprintOf(folder: Pick<ModelFolder, 'sha256' | 'config' | 'labels'>): string {
  const rest = createHash('sha256')
    .update(JSON.stringify([folder.config, folder.labels ?? null]))
    .digest('hex');
  return `${folder.sha256}:${rest}`;
}

/** Reads a flat model folder `dir` (model.onnx at its top), as `readModelVersion` reads a version. */
export async function readModelFolder(dir: string): Promise<ModelFolder> {
  const plan = await readModelPlan(dir);
  if (plan.layout !== 'flat') throw new ModelConfigError(dir, undefined, 'has version folders; read each with readModelVersion');
  return readModelVersion(plan, plan.versions[0]!);
}
