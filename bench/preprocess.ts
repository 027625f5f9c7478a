/**
 * Cost of preprocessing one image: wall time, and CPU time summed over every thread of the
 * process (libvips works in libuv's pool, the tensor is written on the main thread), which is
 * the true cost a serving benchmark divides by the cores it has.
 *
 *   npm run build && node dist/bench/preprocess.js [--iterations N] [image ...]
 *
 * With no images it measures ../shared/images/photos at torchvision's ImageNet preprocessing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createImagePreprocessor, IMAGENET_PREPROCESS, type PreprocessSpec } from '../src/preprocess/index.js';
import { decoderVersions } from '../src/preprocess/sharp-pipeline.js';
import { createTensorWriter } from '../src/preprocess/tensor.js';
import { findRepoRoot } from './lib/repo-root.js';

export interface PreprocessCost {
  /** Wall-clock milliseconds per image, images processed one after another. */
  readonly msPerImageWall: number;
  /** CPU milliseconds per image, user + system, all threads of the process. */
  readonly cpuMsPerImage: number;
}

export interface MeasureOptions {
  /** Passes over `imagePaths` after one warm-up pass. @default 20 */
  readonly iterations?: number;
}

/**
 * Preprocesses every image `iterations` times, one at a time, after one untimed warm-up pass,
 * and returns the mean cost per image. Images are read into memory first: file I/O is not
 * part of the cost.
 */
export async function measurePreprocessCost(
  spec: PreprocessSpec,
  imagePaths: readonly string[],
  { iterations = 20 }: MeasureOptions = {},
): Promise<PreprocessCost> {
  if (imagePaths.length === 0) throw new RangeError('Expected at least one image path');
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`Expected \`iterations\` to be a positive integer, got \`${iterations}\``);
  const images = imagePaths.map((p) => readFileSync(p));
  const preprocessor = createImagePreprocessor(spec, { maxPixels: 100_000_000 });
  for (const bytes of images) await preprocessor.preprocess(bytes);

  const cpuStart = process.cpuUsage();
  const wallStart = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    for (const bytes of images) await preprocessor.preprocess(bytes);
  }
  const wallMs = Number(process.hrtime.bigint() - wallStart) / 1e6;
  const cpu = process.cpuUsage(cpuStart);
  const count = iterations * images.length;
  return { msPerImageWall: wallMs / count, cpuMsPerImage: (cpu.user + cpu.system) / 1000 / count };
}

/**
 * Main-thread cost of writing one normalized tensor from 8-bit pixels, in CPU milliseconds
 * (user + system, so the page faults count; CPU time rather than wall time because it is less
 * disturbed by other processes on a shared machine): the median of 9 rounds. Each call returns
 * a new Float32Array unless `reuse` is set, and then the cost includes allocating it, whose
 * first touch page-faults fresh memory.
 */
export function measureTensorWriteMs(spec: PreprocessSpec, { reuse = false, iterations = 500 } = {}): number {
  const write = createTensorWriter(spec);
  const rgb = Uint8Array.from({ length: spec.crop * spec.crop * 3 }, (_, i) => (i * 131) & 255);
  const into = reuse ? new Float32Array(rgb.length) : undefined;
  for (let i = 0; i < 200; i++) write(rgb, into);
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) {
    const start = process.cpuUsage();
    for (let i = 0; i < iterations; i++) write(rgb, into);
    const used = process.cpuUsage(start);
    rounds.push((used.user + used.system) / 1000 / iterations);
  }
  return rounds.sort((a, b) => a - b)[4] as number;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { iterations: { type: 'string', default: '20' } }, allowPositionals: true });
  const iterations = Number(values.iterations);
  let paths = positionals.map((p) => resolve(p));
  if (paths.length === 0) {
    const photos = join(findRepoRoot(dirname(fileURLToPath(import.meta.url))), '..', 'shared', 'images', 'photos');
    paths = readdirSync(photos)
      .sort()
      .map((f) => join(photos, f));
  }
  const versions = decoderVersions();
  const cpu = cpus();
  console.log(
    `machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `node ${process.version}, sharp ${versions.sharp}, libvips ${versions.libvips}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`,
  );
  console.log(`spec: ImageNet (resize ${IMAGENET_PREPROCESS.resize}, crop ${IMAGENET_PREPROCESS.crop}), ${iterations} iterations, one image at a time`);
  for (const path of paths) {
    const cost = await measurePreprocessCost(IMAGENET_PREPROCESS, [path], { iterations });
    console.log(`  ${path.split('/').pop()?.padEnd(16)} wall ${cost.msPerImageWall.toFixed(2)} ms/image, CPU ${cost.cpuMsPerImage.toFixed(2)} ms/image`);
  }
  const all = await measurePreprocessCost(IMAGENET_PREPROCESS, paths, { iterations });
  console.log(`  all ${paths.length} images    wall ${all.msPerImageWall.toFixed(2)} ms/image, CPU ${all.cpuMsPerImage.toFixed(2)} ms/image`);
  const fresh = measureTensorWriteMs(IMAGENET_PREPROCESS);
  const reused = measureTensorWriteMs(IMAGENET_PREPROCESS, { reuse: true });
  console.log('tensor write on the main thread (224×224, NCHW), CPU per image, median of 9 rounds:');
  console.log(`  into a new 602 kB array ${(fresh * 1000).toFixed(0)} µs; into a reused array ${(reused * 1000).toFixed(0)} µs`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
