/**
 * The layout of the model repository, owned here alone (the registry and the model tools both
 * read it from this module): one folder per model under the repository, the folder name being
 * the model name, holding `model.onnx`, and optionally `config.json` and a labels file.
 *
 * - A model folder is a visible (not dot-prefixed) directory, or a symlink to one: Kubernetes
 *   volumes (ConfigMaps, projected volumes, some CSI drivers) present folders as symlinks, and
 *   Triton follows them too. Dot-prefixed entries are work in progress (staging folders of
 *   `model:fetch` and of the default model's copy, Kubernetes' `..data`), never models.
 * - A model folder without `model.onnx` is still a model folder, a broken one: loading it fails
 *   naming the missing file, rather than the repository silently serving without it.
 * - Every file of a model folder is read as a regular file within a size cap
 *   (repository-files.ts).
 */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, stat, type FileHandle } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { ModelConfigError, parseModelConfigFile, type ModelConfigFile } from './model-config.js';
import { openRegularFile, readRegularFile } from './repository-files.js';

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

/** What a model folder holds, read and checked; the graph itself is onnxruntime's to read. */
export interface ModelFolder {
  /** `model.onnx`, known to be a regular file; onnxruntime opens it again by this path. */
  readonly modelPath: string;
  /** `config.json`, whether or not it exists (messages about config fields name it). */
  readonly configPath: string;
  /** The labels file `config.json` names (else labels.txt), whether or not it exists. */
  readonly labelsPath: string;
  /** `{}` when the folder has no config.json. */
  readonly config: ModelConfigFile;
  /** One class name a line, trimmed, trailing blank lines dropped; `undefined` without a labels file. */
  readonly labels: readonly string[] | undefined;
  /** Of model.onnx's bytes, hex. */
  readonly sha256: string;
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
    if (isMissing(err)) throw new ModelConfigError(modelPath, undefined, 'is missing: every model folder needs a model.onnx');
    throw new ModelConfigError(modelPath, undefined, `cannot be read: ${(err as Error).message}`);
  }
}

async function readConfig(file: string): Promise<ModelConfigFile> {
  let text: string;
  try {
    text = (await readRegularFile(file, CONFIG_MAX_BYTES)).toString('utf8');
  } catch (err) {
    if (err instanceof ModelConfigError) throw err;
    if (isMissing(err)) return {};
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

async function readLabels(dir: string, configPath: string, config: ModelConfigFile): Promise<string[] | undefined> {
  const name = config.labels ?? LABELS_FILE;
  const path = resolve(dir, name);
  if (!path.startsWith(resolve(dir) + sep)) {
    throw new ModelConfigError(configPath, 'labels', `must name a file inside the model folder, got ${JSON.stringify(name)}`);
  }
  let text: string;
  try {
    text = (await readRegularFile(path, LABELS_MAX_BYTES)).toString('utf8');
  } catch (err) {
    if (err instanceof ModelConfigError) throw err;
    if (config.labels === undefined) {
      if (isMissing(err)) return undefined;
      throw new ModelConfigError(path, undefined, `cannot be read: ${(err as Error).message}`);
    }
    throw new ModelConfigError(configPath, 'labels', `names ${path}, which cannot be read: ${(err as Error).message}`);
  }
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  return lines.map((l) => l.trim());
}

/**
 * Reads the model folder `dir`: its config (validated), its labels and model.onnx's sha256.
 * Fails with a `ModelConfigError` naming the file (and field) at fault: model.onnx missing or
 * not a regular file, config.json or the labels file not a regular file, too large, or invalid.
 */
export async function readModelFolder(dir: string): Promise<ModelFolder> {
  const modelPath = join(dir, MODEL_FILE);
  const configPath = join(dir, CONFIG_FILE);
  // onnxruntime opens model.onnx again by path, in the worker; the check here is what keeps a
  // FIFO or a device from reaching it.
  const modelFile = await openModelFile(modelPath);
  try {
    const config = await readConfig(configPath);
    const labels = await readLabels(dir, configPath, config);
    const sha256 = await sha256Of(modelFile);
    return { modelPath, configPath, labelsPath: join(dir, config.labels ?? LABELS_FILE), config, labels, sha256 };
  } finally {
    await modelFile.close();
  }
}
