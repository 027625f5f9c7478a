/**
 * Writes a built ResNet as a model folder: `model.onnx`, `config.json` (with `"trained": false`
 * and the preprocessing the graph expects) and `labels.txt`.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArchitectureSpec, ShortcutKind } from './architectures.js';
import { getArchitecture } from './architectures.js';
import { formatLabels, genericLabels, readLabelSet } from './labels.js';
import type { WrittenModelConfig } from './model-config.js';
import { encodeModel } from './onnx-proto.js';
import type { OnnxModel } from './onnx-graph.js';
import { MAX_SEED } from './prng.js';
import { OPSET_VERSION, buildResNetGraph, wrapGraph } from './resnet.js';
import { CONFIG_FILE, LABELS_FILE, MODEL_FILE } from '../serving/model-repository.js';

/** Seed used when none is given. */
export const DEFAULT_SEED = 0;

export interface BuildOptions {
  /** One of `ARCHITECTURE_NAMES`, e.g. `resnet50`. */
  readonly arch: string;
  /** @default the architecture's (1000 for ImageNet ResNets, 10 for CIFAR ones) */
  readonly classes?: number;
  /** @default "projection" for ImageNet ResNets, "zeropad" for CIFAR ones */
  readonly shortcut?: ShortcutKind;
  /** Unsigned 32-bit seed of the weights. @default 0 */
  readonly seed?: number;
}

export interface ResolvedBuild {
  readonly spec: ArchitectureSpec;
  readonly classes: number;
  readonly shortcut: ShortcutKind;
  readonly seed: number;
}

/** Fills in defaults and checks every option, with messages that name the bad value. */
export function resolveBuildOptions(options: BuildOptions): ResolvedBuild {
  const spec = getArchitecture(options.arch);
  const classes = options.classes ?? spec.defaultClasses;
  if (!Number.isInteger(classes) || classes < 1 || classes > 100_000) {
    throw new RangeError(`Expected \`classes\` to be an integer from 1 to 100000, got \`${options.classes}\``);
  }
  const shortcut = options.shortcut ?? spec.defaultShortcut;
  if (shortcut !== 'projection' && shortcut !== 'zeropad') {
    throw new RangeError(`Expected \`shortcut\` to be "projection" or "zeropad", got \`${String(options.shortcut)}\``);
  }
  const seed = options.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new RangeError(`Expected \`seed\` to be an integer from 0 to ${MAX_SEED}, got \`${options.seed}\``);
  }
  return { spec, classes, shortcut, seed };
}

/** Builds the ONNX model of a resolved build, with its provenance in the model metadata. */
export function buildModel(build: ResolvedBuild): OnnxModel {
  const { spec, classes, shortcut, seed } = build;
  const graph = buildResNetGraph(spec, { classes, shortcut, seed });
  return wrapGraph(
    graph,
    [
      ['trained', 'false'],
      ['arch', spec.name],
      ['classes', String(classes)],
      ['shortcut', shortcut],
      ['seed', String(seed)],
    ],
    describe(build),
  );
}

function describe({ spec, classes, shortcut, seed }: ResolvedBuild): string {
  return (
    `${spec.name} (${spec.family === 'imagenet' ? 'torchvision ImageNet' : 'He et al. CIFAR'} architecture, ` +
    `${shortcut} shortcuts, ${classes} classes) with UNTRAINED weights drawn from seed ${seed}: ` +
    'its predictions mean nothing.'
  );
}

async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(temp, data);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Builds a ResNet and writes `<outDir>/model.onnx`, `config.json` and `labels.txt`, creating
 * `outDir` if needed. The same options always give byte-identical files.
 */
export async function buildModelFiles(
  options: BuildOptions & { readonly outDir: string },
): Promise<{ modelPath: string; configPath: string; labelsPath: string }> {
  const build = resolveBuildOptions(options);
  const { spec, classes, shortcut, seed } = build;
  const bytes = encodeModel(buildModel(build));
  const labels = classes === spec.defaultClasses ? await readLabelSet(spec.labels) : genericLabels(classes);
  const config: WrittenModelConfig = {
    version: '1',
    labels: LABELS_FILE,
    preprocess: spec.preprocess,
    output: 'logits',
    trained: false,
    description: describe(build),
    source: {
      kind: 'built',
      tool: 'npm run model:build',
      arch: spec.name,
      classes,
      shortcut,
      seed,
      opset: OPSET_VERSION,
    },
  };

  await mkdir(options.outDir, { recursive: true });
  const modelPath = join(options.outDir, MODEL_FILE);
  const configPath = join(options.outDir, CONFIG_FILE);
  const labelsPath = join(options.outDir, LABELS_FILE);
  await writeFileAtomic(modelPath, bytes);
  await writeFileAtomic(labelsPath, formatLabels(labels));
  await writeFileAtomic(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return { modelPath, configPath, labelsPath };
}
