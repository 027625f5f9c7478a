/**
 * Shrink-on-load (`preprocess.decode`: "fast" vs "exact") on the phone-photo set
 * (test/fixtures/phone-photos/README.md), which it makes first when absent:
 * - fidelity against torchvision's full decode, through the trained ResNet-20 CIFAR-10 and
 *   torchvision's ResNet-50 (seed 0): top-1 agreement, mean and minimum cosine of the
 *   probability vectors, and the tensors' max and mean absolute difference;
 * - speed: decode + preprocess of one image at a time (ImageNet spec), wall milliseconds, the
 *   two modes interleaved (exact, fast, fast, exact, …) on the largest photos and the largest
 *   WebP and progressive JPEG, median over rounds.
 *
 *   npm run bench:shrink -- [--rounds 15] [--photos 6] [--skip-fidelity] [--skip-speed]
 */
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createImagePreprocessor } from '../src/preprocess/index.js';
import { decoderVersions } from '../src/preprocess/sharp-pipeline.js';
import { positive } from './lib/cli.js';
import { CIFAR_SPEC, IMAGENET_SPEC, measureCifar, measureResnet50, type DecodeMode, type ModelAgreement } from './lib/phone-fidelity.js';
import { ensurePhonePhotos, ensureResnet50Export, loadPhoneManifest, readPhonePhoto } from './lib/phone-photos.js';
import { findRepoRoot } from './lib/repo-root.js';
import { median } from './lib/stats.js';

const MODES: readonly DecodeMode[] = ['exact', 'fast'];

function describeAgreement(a: ModelAgreement): string {
  const tensor = a.tensorMaxAbs === undefined ? '' : `; tensor max abs ${a.tensorMaxAbs.toFixed(3)}, mean abs ${a.tensorMeanAbs?.toFixed(4)}`;
  return `top-1 ${(a.top1Agreement * 100).toFixed(1)} % of ${a.images}, cosine mean ${a.meanCosine.toFixed(5)} min ${a.minCosine.toFixed(4)}, logit correlation ${a.meanLogitCorrelation.toFixed(5)}${tensor}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '15' },
      photos: { type: 'string', default: '6' },
      'skip-fidelity': { type: 'boolean', default: false },
      'skip-speed': { type: 'boolean', default: false },
    },
  });
  const rounds = positive('rounds', values.rounds, { integer: true });
  const photoCount = positive('photos', values.photos, { integer: true });
  const versions = decoderVersions();
  const cpu = cpus();
  console.log(
    `date ${new Date().toISOString()}; machine ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(`node ${process.version}, sharp ${versions.sharp}, libvips ${versions.libvips}`);
  const dir = ensurePhonePhotos();
  console.log(`phone photos: ${dir}`);

  if (!values['skip-fidelity']) {
    const resnet20 = join(findRepoRoot(dirname(fileURLToPath(import.meta.url))), '..', 'shared', 'models', 'resnet20-cifar10', 'model.onnx');
    const resnet50 = ensureResnet50Export(dir);
    for (const mode of MODES) {
      console.log(`${mode.padEnd(5)} ResNet-20 CIFAR-10 (32): ${describeAgreement(await measureCifar(dir, resnet20, mode))}`);
      console.log(`${mode.padEnd(5)} ResNet-50 seed 0 (224):  ${describeAgreement(await measureResnet50(dir, resnet50, mode))}`);
    }
  }

  if (!values['skip-speed']) {
    // The largest photos, and the largest WebP and progressive JPEG besides.
    const bySize = [...loadPhoneManifest().images].sort((a, b) => b.width * b.height - a.width * a.height || a.name.localeCompare(b.name));
    const photos = bySize.slice(0, photoCount);
    for (const pick of [bySize.find((p) => p.format === 'webp'), bySize.find((p) => p.progressive === true)]) {
      if (pick !== undefined && !photos.includes(pick)) photos.push(pick);
    }
    for (const specOf of [IMAGENET_SPEC, CIFAR_SPEC]) {
      const pre = Object.fromEntries(MODES.map((m) => [m, createImagePreprocessor(specOf(m), { maxPixels: 40_000_000 })]));
      const spec = specOf('fast');
      console.log(`speed, resize ${spec.resize} crop ${spec.crop}, one image at a time, wall ms, median of ${rounds} rounds (interleaved):`);
      for (const photo of photos) {
        const bytes = readPhonePhoto(dir, photo);
        const times: Record<string, number[]> = { exact: [], fast: [] };
        for (const m of MODES) await pre[m]!.preprocess(bytes);
        for (let r = 0; r < rounds; r++) {
          for (const m of r % 2 === 0 ? MODES : [...MODES].reverse()) {
            const start = process.hrtime.bigint();
            await pre[m]!.preprocess(bytes);
            times[m]!.push(Number(process.hrtime.bigint() - start) / 1e6);
          }
        }
        const [exact, fast] = [median(times.exact!), median(times.fast!)];
        const what = `${photo.width}×${photo.height} ${photo.format}${photo.orientation && photo.orientation !== 1 ? ` orientation ${photo.orientation}` : ''}${photo.progressive ? ' progressive' : ''}`;
        console.log(`  ${photo.name} ${what.padEnd(36)} exact ${exact.toFixed(1)} ms, fast ${fast.toFixed(1)} ms (${(exact / fast).toFixed(2)}×)`);
      }
    }
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
