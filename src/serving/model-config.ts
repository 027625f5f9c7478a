/**
 * A model folder's `config.json`, validated field by field, and resolved against what the
 * ONNX graph itself declares (input name, element type, shape, fixed or dynamic batch).
 * Every failure names the file and the field, because it stops startup and an operator
 * has to find it.
 */
import { IMAGENET_PREPROCESS, PREPROCESS_FIELD_RULES, type PreprocessSpec } from '../preprocess/spec.js';
import type { TensorInfo } from '../inference/onnx-binding.js';
import { parseVersionPolicy, type VersionPolicy } from './version-policy.js';

export type OutputKind = 'logits' | 'probabilities';

/**
 * A model folder's `config.json`: the one type of it, read here and written by the model tools
 * (src/model-tools/model-config.ts). Every field is optional for the server.
 */
export interface ModelConfigFile {
  /**
   * The version a flat model folder (model.onnx at its top) is served as. @default "1"
   * In the versioned layout the version folder's name is the version: there it may only repeat it.
   */
  readonly version?: string;
  /** Which version folders are served (version-policy.ts); a versioned model's own config.json only. */
  readonly version_policy?: VersionPolicy;
  /** Labels file, relative to the model folder, one class name a line in output order. @default "labels.txt" */
  readonly labels?: string;
  /** Fields left out are derived from the graph's input, else torchvision's ImageNet values. */
  readonly preprocess?: Partial<PreprocessSpec>;
  /** What the graph's (first) output holds: raw scores that need a softmax, or probabilities. @default "logits" */
  readonly output?: OutputKind;
  /** `false` marks a model whose weights are random (the built default model). */
  readonly trained?: boolean;
  readonly description?: string;
  /** Where the model came from (builder options, or the download `model:fetch` made); informational. */
  readonly source?: Readonly<Record<string, unknown>>;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const DEFAULT_CROP = IMAGENET_PREPROCESS.crop;
/** torchvision's evaluation ratio between crop and resize (224 / 256). */
const CROP_RATIO = 0.875;

export class ModelConfigError extends Error {
  constructor(file: string, field: string | undefined, problem: string) {
    super(field === undefined ? `${file}: ${problem}` : `${file}: field \`${field}\` ${problem}`);
    this.name = 'ModelConfigError';
  }
}

const TOP_FIELDS = new Set(['version', 'version_policy', 'labels', 'preprocess', 'output', 'trained', 'description', 'source']);
const PREPROCESS_FIELDS = new Set(Object.keys(PREPROCESS_FIELD_RULES));

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function oneOf<T extends string>(file: string, field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new ModelConfigError(file, field, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Validates the parsed JSON of a `config.json`; `file` is only used in messages. */
export function parseModelConfigFile(raw: unknown, file: string): ModelConfigFile {
  if (!isRecord(raw)) throw new ModelConfigError(file, undefined, 'must hold a JSON object');
  for (const key of Object.keys(raw)) {
    if (!TOP_FIELDS.has(key)) throw new ModelConfigError(file, key, `is not a known field (known: ${[...TOP_FIELDS].join(', ')})`);
  }
  const out: Mutable<ModelConfigFile> = {};
  if (raw.version !== undefined) {
    if (typeof raw.version !== 'string' && typeof raw.version !== 'number') {
      throw new ModelConfigError(file, 'version', `must be a string, got ${JSON.stringify(raw.version)}`);
    }
    out.version = String(raw.version);
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(out.version)) {
      throw new ModelConfigError(file, 'version', 'must be 1 to 64 letters, digits, dots, dashes or underscores');
    }
  }
  if (raw.version_policy !== undefined) out.version_policy = parseVersionPolicy(raw.version_policy, file);
  if (raw.labels !== undefined) {
    if (typeof raw.labels !== 'string' || raw.labels.length === 0) {
      throw new ModelConfigError(file, 'labels', `must be a file name, got ${JSON.stringify(raw.labels)}`);
    }
    out.labels = raw.labels;
  }
  if (raw.output !== undefined) out.output = oneOf(file, 'output', raw.output, ['logits', 'probabilities'] as const);
  if (raw.trained !== undefined) {
    if (typeof raw.trained !== 'boolean') throw new ModelConfigError(file, 'trained', `must be true or false, got ${JSON.stringify(raw.trained)}`);
    out.trained = raw.trained;
  }
  if (raw.description !== undefined) {
    if (typeof raw.description !== 'string') throw new ModelConfigError(file, 'description', 'must be a string');
    out.description = raw.description;
  }
  if (raw.source !== undefined) {
    if (!isRecord(raw.source)) throw new ModelConfigError(file, 'source', 'must be an object');
    out.source = raw.source;
  }
  if (raw.preprocess !== undefined) {
    const p = raw.preprocess;
    if (!isRecord(p)) throw new ModelConfigError(file, 'preprocess', 'must be an object');
    for (const key of Object.keys(p)) {
      if (!PREPROCESS_FIELDS.has(key)) {
        throw new ModelConfigError(file, `preprocess.${key}`, `is not a known field (known: ${[...PREPROCESS_FIELDS].join(', ')})`);
      }
    }
    const pre: Mutable<Partial<PreprocessSpec>> = {};
    for (const [key, value] of Object.entries(p)) {
      if (value === undefined) continue;
      const rule = PREPROCESS_FIELD_RULES[key as keyof PreprocessSpec];
      if (!rule.valid(value)) throw new ModelConfigError(file, `preprocess.${key}`, `must be ${rule.expected}, got ${JSON.stringify(value)}`);
      Object.assign(pre, { [key]: Array.isArray(value) ? [...(value as number[])] : value });
    }
    out.preprocess = pre;
  }
  return out;
}

/** What the server needs to feed a model, from its config and its graph. */
export interface ResolvedModelInput {
  readonly name: string;
  /** Shape as declared; the batch dimension is -1 when dynamic (as the v2 protocol writes it). */
  readonly shape: readonly number[];
  /** The batch size the graph demands, or `undefined` when the batch dimension is dynamic. */
  readonly fixedBatchSize: number | undefined;
  /** Elements of one item (one image): 3 × crop × crop. */
  readonly itemSize: number;
  readonly preprocess: PreprocessSpec;
}

/**
 * Combines the config's preprocessing with the graph's input. Where the graph fixes H×W and
 * the config gives no size, crop = H and resize = round(H / 0.875), as torchvision does.
 */
export function resolveModelInput(config: ModelConfigFile, inputs: readonly TensorInfo[], files: { config: string; model: string }): ResolvedModelInput {
  if (inputs.length !== 1) {
    throw new ModelConfigError(files.model, undefined, `must have exactly one graph input (an image batch), found ${inputs.length}`);
  }
  const input = inputs[0]!;
  if (input.type !== 'float32') {
    throw new ModelConfigError(files.model, undefined, `input \`${input.name}\` must be float32, found ${input.type}`);
  }
  if (input.shape.length !== 4) {
    throw new ModelConfigError(
      files.model,
      undefined,
      `input \`${input.name}\` must have rank 4 (batch, channels, height, width), found shape [${input.shape.join(', ')}]`,
    );
  }
  const pre = config.preprocess ?? {};
  const layout = pre.layout ?? 'NCHW';
  const [batchDim, d1, d2, d3] = input.shape as [number | string, number | string, number | string, number | string];
  const [channelDim, heightDim, widthDim] = layout === 'NCHW' ? [d1, d2, d3] : [d3, d1, d2];
  if (typeof channelDim === 'number' && channelDim !== 3) {
    throw new ModelConfigError(
      files.config,
      'preprocess.layout',
      `is ${layout}, but the graph input \`${input.name}\` has ${channelDim} channels there (shape [${input.shape.join(', ')}]); expected 3`,
    );
  }
  const fixedH = typeof heightDim === 'number' ? heightDim : undefined;
  const fixedW = typeof widthDim === 'number' ? widthDim : undefined;
  if (fixedH !== undefined && fixedW !== undefined && fixedH !== fixedW) {
    throw new ModelConfigError(files.model, undefined, `input \`${input.name}\` is ${fixedH}×${fixedW}; only square inputs are supported`);
  }
  const graphSize = fixedH ?? fixedW;
  const crop = pre.crop ?? graphSize ?? (pre.resize !== undefined ? Math.min(pre.resize, DEFAULT_CROP) : DEFAULT_CROP);
  if (graphSize !== undefined && crop !== graphSize) {
    throw new ModelConfigError(files.config, 'preprocess.crop', `is ${crop}, but the graph input \`${input.name}\` is ${graphSize}×${graphSize}`);
  }
  const resize = pre.resize ?? Math.round(crop / CROP_RATIO);
  if (resize < crop) {
    throw new ModelConfigError(files.config, 'preprocess.resize', `is ${resize}, smaller than the crop ${crop}`);
  }
  const preprocess: PreprocessSpec = Object.freeze({
    resize,
    crop,
    mean: pre.mean ?? IMAGENET_PREPROCESS.mean,
    std: pre.std ?? IMAGENET_PREPROCESS.std,
    scale: pre.scale ?? 255,
    channels: pre.channels ?? 'RGB',
    layout,
    decode: pre.decode ?? IMAGENET_PREPROCESS.decode,
  });
  const fixedBatchSize = typeof batchDim === 'number' && batchDim > 0 ? batchDim : undefined;
  const shape = layout === 'NCHW' ? [fixedBatchSize ?? -1, 3, crop, crop] : [fixedBatchSize ?? -1, crop, crop, 3];
  return { name: input.name, shape, fixedBatchSize, itemSize: 3 * crop * crop, preprocess };
}
