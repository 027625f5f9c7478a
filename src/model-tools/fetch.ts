/**
 * Fetches a pretrained model from the catalog into the model repository as a model folder
 * (`model.onnx`, `config.json`, `labels.txt`). Until the model is complete and its checksum
 * verified, everything lives in a hidden staging folder, `<repository>/.fetch-<name>`, which the
 * model registry never takes for a model; the model folder appears in one rename. A failed
 * fetch leaves behind only what the next run resumes from (the part downloaded so far), and
 * nothing at all when there is nothing to resume: not even a repository folder it created.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { CatalogEntry } from './catalog.js';
import { CATALOG, findCatalogEntry } from './catalog.js';
import type { DownloadOptions } from './download.js';
import { downloadFile, sha256File } from './download.js';
import { formatLabels, readLabelSet } from './labels.js';
import type { WrittenModelConfig } from './model-config.js';
import { CONFIG_FILE, LABELS_FILE, MODEL_FILE } from '../serving/model-repository.js';

export type FetchErrorCode = 'UNKNOWN_MODEL' | 'ALREADY_EXISTS' | 'INVALID_BASE_URL';

export class FetchError extends Error {
  readonly code: FetchErrorCode;

  constructor(code: FetchErrorCode, message: string) {
    super(message);
    this.name = 'FetchError';
    this.code = code;
  }
}

/** The downloader's retry, progress and cancellation options, passed through unchanged. */
type DownloadControl = Pick<DownloadOptions, 'retries' | 'retryDelayMs' | 'idleTimeoutMs' | 'onProgress' | 'onRetry' | 'signal'>;

export interface FetchModelOptions extends DownloadControl {
  /** Catalog name or alias, e.g. `resnet50-v1`. */
  readonly name: string;
  /** Model repository; created if missing. */
  readonly repositoryDir: string;
  /** Folder URL replacing the catalog's (a mirror, or a test server); the file name is appended. */
  readonly baseUrl?: string;
  /** Replace an existing model folder of the same name. @default false */
  readonly force?: boolean;
  /** @default the built-in catalog */
  readonly catalog?: readonly CatalogEntry[];
}

export interface FetchModelResult {
  readonly name: string;
  readonly modelDir: string;
  readonly url: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly resumed: boolean;
}

/** The URL an entry is fetched from, honouring a base URL override. */
export function resolveModelUrl(entry: CatalogEntry, baseUrl?: string): string {
  const base = baseUrl ?? entry.baseUrl;
  let url: URL;
  try {
    url = new URL(entry.file, base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw new FetchError('INVALID_BASE_URL', `The base URL "${base}" is not a valid URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new FetchError('INVALID_BASE_URL', `The base URL "${base}" must use http or https`);
  }
  return url.href;
}

function configFor(entry: CatalogEntry, url: string, sha256: string): WrittenModelConfig {
  return {
    version: '1',
    labels: LABELS_FILE,
    preprocess: entry.preprocess,
    output: 'logits',
    trained: true,
    description: entry.description,
    source: {
      kind: 'fetched',
      catalogName: entry.name,
      url,
      page: entry.page,
      license: entry.license,
      sha256,
      bytes: entry.sizeBytes,
      input: entry.input,
      outputName: entry.outputName,
    },
  };
}

/**
 * The hidden folder where `<repositoryDir>/<name>` is put together, and where an interrupted
 * fetch keeps what the next run resumes from.
 */
export function fetchStagingDir(repositoryDir: string, name: string): string {
  return join(repositoryDir, `.fetch-${name}`);
}

async function holdsBytes(path: string): Promise<boolean> {
  return ((await stat(path).catch(() => undefined))?.size ?? 0) > 0;
}

/**
 * After a failure: keeps the staging folder if a next run can resume from it (a verified model,
 * or part of one), else removes it, and with it the repository folders this run created, if
 * they hold nothing else.
 */
async function discardUnresumable(staging: string, modelPath: string, repositoryDir: string, createdFrom: string | undefined): Promise<void> {
  if ((await holdsBytes(modelPath)) || (await holdsBytes(`${modelPath}.part`))) return;
  await rm(staging, { recursive: true, force: true });
  if (createdFrom === undefined) return;
  const top = resolve(createdFrom);
  for (let dir = resolve(repositoryDir); ; dir = dirname(dir)) {
    // rmdir removes only an empty folder: one that something else wrote into stays.
    if (
      !(await rmdir(dir).then(
        () => true,
        () => false,
      )) ||
      dir === top ||
      dir === dirname(dir)
    )
      return;
  }
}

/** Downloads a catalogued model into `<repositoryDir>/<name>`. */
export async function fetchModel(options: FetchModelOptions): Promise<FetchModelResult> {
  const catalog = options.catalog ?? CATALOG;
  const entry = findCatalogEntry(options.name, catalog);
  if (!entry) {
    throw new FetchError('UNKNOWN_MODEL', `No model "${options.name}" in the catalog; known: ${catalog.map((e) => e.name).join(', ')}`);
  }
  const url = resolveModelUrl(entry, options.baseUrl);
  const target = join(options.repositoryDir, entry.name);
  if (existsSync(target) && !options.force) {
    throw new FetchError('ALREADY_EXISTS', `${target} already exists; pass --force to replace it`);
  }

  // The first folder this run creates, if the repository is new: removed again on failure.
  const createdFrom = await mkdir(options.repositoryDir, { recursive: true });
  // Stable name, so an interrupted fetch resumes from its `.part` file on the next run.
  const staging = fetchStagingDir(options.repositoryDir, entry.name);
  const modelPath = join(staging, MODEL_FILE);
  try {
    await mkdir(staging, { recursive: true });
    const result = await stage(entry, url, staging, modelPath, options);
    await moveIntoPlace(staging, target, options.repositoryDir, entry.name);
    return { name: entry.name, modelDir: target, url, ...result };
  } catch (error) {
    // The fetch's own error is the one to report, even if cleaning up fails too.
    await discardUnresumable(staging, modelPath, options.repositoryDir, createdFrom).catch(() => undefined);
    throw error;
  }
}

/** Puts the complete model folder together in `staging`: the verified model, labels, config. */
async function stage(
  entry: CatalogEntry,
  url: string,
  staging: string,
  modelPath: string,
  options: FetchModelOptions,
): Promise<{ bytes: number; sha256: string; resumed: boolean }> {
  let result: { bytes: number; sha256: string; resumed: boolean };
  if (existsSync(modelPath) && (await sha256File(modelPath)) === entry.sha256) {
    // Downloaded and verified by a run that stopped before moving it into place.
    result = { bytes: entry.sizeBytes, sha256: entry.sha256, resumed: true };
  } else {
    await rm(modelPath, { force: true });
    result = await downloadFile({
      url,
      destination: modelPath,
      expectedBytes: entry.sizeBytes,
      sha256: entry.sha256,
      ...(options.retries !== undefined && { retries: options.retries }),
      ...(options.retryDelayMs !== undefined && { retryDelayMs: options.retryDelayMs }),
      ...(options.idleTimeoutMs !== undefined && { idleTimeoutMs: options.idleTimeoutMs }),
      ...(options.onProgress && { onProgress: options.onProgress }),
      ...(options.onRetry && { onRetry: options.onRetry }),
      ...(options.signal && { signal: options.signal }),
    });
  }

  const labels = await readLabelSet(entry.labels);
  await writeFile(join(staging, LABELS_FILE), formatLabels(labels));
  await writeFile(join(staging, CONFIG_FILE), `${JSON.stringify(configFor(entry, url, result.sha256), null, 2)}\n`);
  return result;
}

/** Renames the staged folder to `target` (one rename: the registry sees all of it or none). */
async function moveIntoPlace(staging: string, target: string, repositoryDir: string, name: string): Promise<void> {
  if (existsSync(target)) {
    // --force: move the old folder aside first, so a failure leaves one complete model in place.
    const aside = join(repositoryDir, `.replaced-${name}-${process.pid}`);
    await rename(target, aside);
    await rename(staging, target);
    await rm(aside, { recursive: true, force: true });
  } else {
    await rename(staging, target);
  }
}
