/**
 * The model a fresh clone serves: when the model repository holds no model, an untrained
 * resnet50 is built into `<repository>/resnet50` once, so `npm start` works with no network.
 * Later starts find it and build nothing.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MODEL_FILE, buildModelFiles } from './build.js';

export const DEFAULT_MODEL_NAME = 'resnet50';

/** Folders being built are hidden (dot-prefixed) so a repository scan never takes one for a model. */
const STAGING_PREFIX = '.building-';
/** A staging folder this old was left by an interrupted start, not by a build still running. */
const STALE_STAGING_MS = 60 * 60 * 1000;

export interface DefaultModelLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Names of the model folders (visible folders holding `model.onnx`) in a repository. */
export async function listModelFolders(repositoryDir: string): Promise<string[]> {
  const entries = await readdir(repositoryDir, { withFileTypes: true });
  const names: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const folder = join(repositoryDir, entry.name);
    // stat follows symlinks, so a linked model folder counts too.
    const info = await stat(folder).catch(() => undefined);
    if (info?.isDirectory() && existsSync(join(folder, MODEL_FILE))) names.push(entry.name);
  }
  return names.sort();
}

async function removeStaleStaging(repositoryDir: string, now: number): Promise<void> {
  for (const entry of await readdir(repositoryDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !entry.name.startsWith(STAGING_PREFIX)) continue;
    const path = join(repositoryDir, entry.name);
    const info = await stat(path).catch(() => undefined);
    if (info && now - info.mtimeMs > STALE_STAGING_MS) await rm(path, { recursive: true, force: true });
  }
}

/**
 * Builds an untrained resnet50 into `<repositoryDir>/resnet50` when the repository (created if
 * missing) holds no model folder. The model is written to a hidden staging folder and renamed
 * into place, so an interrupted start never leaves half a model. Returns `built: false`, and
 * touches nothing, when a model already exists; `name` is the built model's folder name.
 */
export async function ensureDefaultModel(repositoryDir: string, log: DefaultModelLog): Promise<{ built: boolean; name: string | undefined }> {
  await mkdir(repositoryDir, { recursive: true });
  if ((await listModelFolders(repositoryDir)).length > 0) return { built: false, name: undefined };

  const target = join(repositoryDir, DEFAULT_MODEL_NAME);
  await removeStaleStaging(repositoryDir, Date.now());
  if (existsSync(target)) {
    // A folder of that name without model.onnx is the user's (or a broken copy): never overwrite it.
    log.warn({ path: target }, `The model repository holds no model, and ${target} exists without ${MODEL_FILE}; not building the default model there`);
    return { built: false, name: undefined };
  }

  log.info({ repository: repositoryDir, model: DEFAULT_MODEL_NAME }, `The model repository holds no model: building an untrained ${DEFAULT_MODEL_NAME} (takes a few seconds, once)`);
  const staging = join(repositoryDir, `${STAGING_PREFIX}${DEFAULT_MODEL_NAME}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const started = performance.now();
  try {
    await buildModelFiles({ arch: DEFAULT_MODEL_NAME, outDir: staging });
    await rename(staging, target);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    // Another process sharing the repository may have put its model in place first.
    if (existsSync(join(target, MODEL_FILE))) return { built: false, name: undefined };
    throw error;
  }

  log.warn(
    { model: DEFAULT_MODEL_NAME, path: target, trained: false, buildMs: Math.round(performance.now() - started) },
    `Built ${target} with UNTRAINED (random) weights: it serves, but its predictions mean nothing. ` +
      'For a trained model run `npm run model:fetch -- resnet50-v1` (downloads the ONNX Model Zoo ResNet-50), ' +
      'or export your own to ONNX (see docs/models.md), put it in the model repository and delete this folder.',
  );
  return { built: true, name: DEFAULT_MODEL_NAME };
}
