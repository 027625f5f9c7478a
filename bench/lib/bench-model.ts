/**
 * The benchmarks' model and inputs: ResNet-50 from the model builder, cached in .bench/models
 * (as `npm run bench` and `npm run bench:protocol` keep it), a repository holding only it, its
 * resolved input, and a batch of real photos preprocessed as its config says.
 *
 * bench/serve.ts and bench/protocol.ts hold the same steps as private functions; they can
 * import these instead.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { openSession } from '../../src/inference/onnx-binding.js';
import { buildModelFiles } from '../../src/model-tools/build.js';
import { createImagePreprocessor } from '../../src/preprocess/index.js';
import { parseModelConfigFile, resolveModelInput, type ResolvedModelInput } from '../../src/serving/model-config.js';

export interface BenchModel {
  readonly dir: string;
  readonly name: string;
}

const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|gif)$/i;

/**
 * `modelDir` when given (it must hold model.onnx), else resnet50 in `cacheDir`, built with the
 * model builder the first time (into a staging folder, so an interrupted build leaves no half model).
 */
export async function ensureModel(modelDir: string | undefined, cacheDir: string): Promise<BenchModel> {
  if (modelDir !== undefined) {
    if (!existsSync(join(modelDir, 'model.onnx'))) throw new Error(`--model ${modelDir}: no model.onnx there`);
    return { dir: modelDir, name: basename(modelDir) };
  }
  const dir = join(cacheDir, 'resnet50');
  if (!existsSync(join(dir, 'model.onnx')) || !existsSync(join(dir, 'config.json'))) {
    process.stdout.write(`Building resnet50 with the model builder into ${dir} (once) ...\n`);
    const staging = `${dir}.staging-${process.pid}`;
    await rm(staging, { recursive: true, force: true });
    await buildModelFiles({ arch: 'resnet50', outDir: staging });
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
  }
  return { dir, name: 'resnet50' };
}

/** A repository at `repository` holding only `model`: a folder of links to its files. */
export async function prepareRepository(model: BenchModel, repository: string): Promise<void> {
  await rm(repository, { recursive: true, force: true });
  const folder = join(repository, model.name);
  await mkdir(folder, { recursive: true });
  for (const entry of readdirSync(model.dir, { withFileTypes: true })) {
    if (entry.isFile()) await symlink(join(model.dir, entry.name), join(folder, entry.name));
  }
}

/** The model's input as the server resolves it (name, shape, preprocessing). */
export async function readModelInput(dir: string): Promise<ResolvedModelInput> {
  const configPath = join(dir, 'config.json');
  const config = existsSync(configPath) ? parseModelConfigFile(JSON.parse(await readFile(configPath, 'utf8')), configPath) : {};
  const session = await openSession(join(dir, 'model.onnx'), { intraOpThreads: 1 });
  try {
    return resolveModelInput(config, session.inputs, { config: configPath, model: join(dir, 'model.onnx') });
  } finally {
    await session.release();
  }
}

/** `batch` real items: the images of `photosDir`, preprocessed as the model's config says, in rotation. */
export async function photoBatch(input: ResolvedModelInput, batch: number, photosDir: string): Promise<{ data: Float32Array; names: string[] }> {
  const files = readdirSync(photosDir)
    .filter((f) => IMAGE_EXTENSIONS.test(f))
    .sort();
  if (files.length === 0) throw new Error(`no photos in ${photosDir}`);
  const preprocessor = createImagePreprocessor(input.preprocess, { maxPixels: 100_000_000 });
  const data = new Float32Array(batch * input.itemSize);
  const names: string[] = [];
  for (let i = 0; i < batch; i++) {
    const name = files[i % files.length]!;
    const item = await preprocessor.preprocess(readFileSync(join(photosDir, name)));
    data.set(item.data, i * input.itemSize);
    names.push(name);
  }
  return { data, names };
}
