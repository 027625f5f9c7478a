/**
 * The model a fresh clone serves: when the model repository holds no model, the trained
 * ResNet-20 for CIFAR-10 shipped in `assets/models/resnet20-cifar10` is copied into
 * `<repository>/resnet20-cifar10` once, so `npm start` classifies photos with no network.
 * Later starts find it and copy nothing.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MODEL_FILE, scanRepository } from '../serving/model-repository.js';
import { findProjectRoot } from '../system/project-root.js';

export const DEFAULT_MODEL_NAME = 'resnet20-cifar10';

/** Where the shipped default model lives in the project (and in the container image). */
export function shippedDefaultModelDir(): string {
  return join(findProjectRoot(), 'assets', 'models', DEFAULT_MODEL_NAME);
}

/** Folders being written are hidden (dot-prefixed) so a repository scan never takes one for a model. */
const STAGING_PREFIX = '.seeding-';
/** Staging folders of earlier releases, which built an untrained resnet50 there. */
const STAGING_PREFIXES = [STAGING_PREFIX, '.building-'];
/** A staging folder this old was left by an interrupted start, not by a copy still running. */
const STALE_STAGING_MS = 60 * 60 * 1000;

export interface DefaultModelLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

async function removeStaleStaging(repositoryDir: string, now: number): Promise<void> {
  for (const entry of await readdir(repositoryDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !STAGING_PREFIXES.some((prefix) => entry.name.startsWith(prefix))) continue;
    const path = join(repositoryDir, entry.name);
    const info = await stat(path).catch(() => undefined);
    if (info && now - info.mtimeMs > STALE_STAGING_MS) await rm(path, { recursive: true, force: true });
  }
}

/**
 * Copies the shipped trained ResNet-20 into `<repositoryDir>/resnet20-cifar10` when the
 * repository (created if missing) holds no model folder, by the rule the server loads models
 * by (serving/model-repository.ts): a folder without model.onnx counts, and fails the load
 * naming the missing file rather than being served beside a copy. The copy is written to a hidden
 * staging folder and renamed into place, so an interrupted start never leaves half a model.
 * Returns `seeded: false`, and touches nothing, when a model already exists; `name` is the
 * seeded model's folder name. `sourceDir` is for tests.
 */
export async function ensureDefaultModel(
  repositoryDir: string,
  log: DefaultModelLog,
  sourceDir: string = shippedDefaultModelDir(),
): Promise<{ seeded: boolean; name: string | undefined }> {
  await mkdir(repositoryDir, { recursive: true });
  const scan = await scanRepository(repositoryDir);
  if (scan.models.length > 0) return { seeded: false, name: undefined };

  const target = join(repositoryDir, DEFAULT_MODEL_NAME);
  await removeStaleStaging(repositoryDir, Date.now());
  const inTheWay = scan.skipped.find((s) => s.name === DEFAULT_MODEL_NAME);
  if (inTheWay) {
    // Something of that name that is not a model folder (a file, a dangling symlink) is the user's: never replace it.
    log.warn(
      { path: target, reason: inTheWay.reason },
      `The model repository holds no model, and ${target} is in the way (${inTheWay.reason}); not copying the default model there`,
    );
    return { seeded: false, name: undefined };
  }

  const staging = join(repositoryDir, `${STAGING_PREFIX}${DEFAULT_MODEL_NAME}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await cp(sourceDir, staging, { recursive: true, errorOnExist: true, force: false });
    await rename(staging, target);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    // Another process sharing the repository may have put its model in place first.
    if (existsSync(join(target, MODEL_FILE))) return { seeded: false, name: undefined };
    throw error;
  }

  log.info(
    { model: DEFAULT_MODEL_NAME, path: target, trained: true, classes: 10 },
    `The model repository held no model: copied the shipped ${DEFAULT_MODEL_NAME} into ${target}. ` +
      'It is a trained ResNet-20 that knows the 10 CIFAR-10 classes (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck) at 32x32 pixels. ' +
      'For ImageNet classes, put an ImageNet ResNet in the repository (README.md, "Serve an ImageNet ResNet").',
  );
  return { seeded: true, name: DEFAULT_MODEL_NAME };
}
