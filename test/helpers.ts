/**
 * Test fixtures in one place: where the shared model and images are, temporary model
 * repositories, and apps built with test-sized settings.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { findRepoRoot } from '../bench/lib/repo-root.js';

export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
/** ../shared next to the checkout (read-only; present in CI too). */
export const SHARED = resolve(REPO_ROOT, '..', 'shared');
export const RESNET20_DIR = join(SHARED, 'models', 'resnet20-cifar10');
export const PHOTOS_DIR = join(SHARED, 'images', 'photos');
export const CIFAR_DIR = join(SHARED, 'images', 'cifar10');
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');

export const photo = (name: string) => readFile(join(PHOTOS_DIR, name));

/** The shared trained model's config, as the issue gives it. */
export const RESNET20_CONFIG = { preprocess: { resize: 32, crop: 32 } };

/** A version folder of a versioned model: its name, and its own config.json when given. */
export interface TempVersion {
  readonly version: string;
  readonly config?: unknown;
}

export interface TempModel {
  readonly name: string;
  /** Folder whose model.onnx and labels.txt are copied (when present). */
  readonly from: string;
  /** The model's config.json (at the model folder's top in either layout). */
  readonly config?: unknown;
  /**
   * The versioned layout: these version folders, each with a copy of model.onnx (and its own
   * config.json when given); labels.txt stays at the model's top. Left out: the flat layout.
   */
  readonly versions?: ReadonlyArray<string | TempVersion>;
}

/** A temporary model repository, removed when the test ends. */
export async function tempRepository(t: TestContext, models: readonly TempModel[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'resnet-serve-test-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  for (const m of models) {
    const dir = join(root, m.name);
    await mkdir(dir, { recursive: true });
    for (const v of m.versions ?? []) {
      const { version, config } = typeof v === 'string' ? { version: v, config: undefined } : v;
      await mkdir(join(dir, version));
      await copyFile(join(m.from, 'model.onnx'), join(dir, version, 'model.onnx'));
      if (config !== undefined) await writeFile(join(dir, version, 'config.json'), JSON.stringify(config));
    }
    if (m.versions === undefined) await copyFile(join(m.from, 'model.onnx'), join(dir, 'model.onnx'));
    if (existsSync(join(m.from, 'labels.txt'))) await copyFile(join(m.from, 'labels.txt'), join(dir, 'labels.txt'));
    if (m.config !== undefined) await writeFile(join(dir, 'config.json'), JSON.stringify(m.config));
  }
  return root;
}

/** Config for tests: quiet, small, on the given repository; `env` overrides. */
export function testConfig(repository: string, env: Record<string, string> = {}): Config {
  return loadConfig(
    // GRPC_PORT 0: apps built here serve HTTP only, unless a test starts a gRPC server itself.
    { LOG_LEVEL: 'silent', MODEL_REPOSITORY: repository, SEED_DEFAULT_MODEL: 'false', INTRA_OP_THREADS: '1', BATCH_MAX_SIZE: '4', GRPC_PORT: '0', ...env },
    { availableCpus: 1 },
  );
}

/** A fresh app on `repository`, models loaded, closed when the test ends. */
export async function startApp(t: TestContext, repository: string, env: Record<string, string> = {}, deps: AppDeps = {}): Promise<FastifyInstance> {
  const app = await buildApp(testConfig(repository, env), { defaultMetrics: false, ...deps });
  t.after(() => app.close());
  await app.ready();
  await app.serving.registry.load();
  return app;
}

/** The shared trained ResNet-20 in a temporary repository, served by a fresh app. */
export async function resnet20App(t: TestContext, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  return startApp(t, repo, env);
}

/**
 * `count` byte strings of one image that differ from each other (a counter from `from` appended
 * after the image's end, which decoders ignore: see hostile-polyglots.test.ts), for tests whose
 * load must not be coalesced: identical images in flight together run as one inference.
 */
export function distinctCopies(image: Buffer, count: number, from = 0): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const tag = Buffer.alloc(4);
    tag.writeUInt32BE(from + i);
    return Buffer.concat([image, tag]);
  });
}
