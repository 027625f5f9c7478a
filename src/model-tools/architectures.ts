/**
 * The ResNets the builder knows: torchvision's ImageNet ResNets and He et al.'s CIFAR ResNets
 * (2016, section 4.2). Each entry says everything the graph, the weight initialisation and the
 * written config.json depend on.
 */
import type { PreprocessConfig } from './model-config.js';
import { CIFAR_PREPROCESS, IMAGENET_PREPROCESS } from './model-config.js';

export type ShortcutKind = 'projection' | 'zeropad';
export type BlockKind = 'basic' | 'bottleneck';
export type LabelSet = 'imagenet-1k' | 'cifar10';

export interface StemSpec {
  readonly kernel: number;
  readonly stride: number;
  readonly channels: number;
  /** 3×3 stride-2 max pool after the stem convolution (ImageNet ResNets only). */
  readonly maxPool: boolean;
}

export interface ArchitectureSpec {
  readonly name: string;
  readonly family: 'imagenet' | 'cifar';
  readonly block: BlockKind;
  /** Residual blocks in each stage. */
  readonly blocksPerStage: readonly number[];
  /** Channels of each stage's 3×3 convolutions ("planes"); bottlenecks output 4× as many. */
  readonly stageWidths: readonly number[];
  readonly stem: StemSpec;
  /** Height and width of the input image, in pixels. */
  readonly inputSize: number;
  readonly defaultClasses: number;
  readonly defaultShortcut: ShortcutKind;
  /** Class names shipped for `defaultClasses` outputs. */
  readonly labels: LabelSet;
  readonly preprocess: PreprocessConfig;
  /**
   * He-normal fan mode of the convolution weights: torchvision uses `fan_out`
   * (`kaiming_normal_(mode="fan_out")`), the CIFAR reference (akamaster/pytorch_resnet_cifar10)
   * PyTorch's default `fan_in`.
   */
  readonly convInitFan: 'fan_in' | 'fan_out';
  /**
   * Initialisation of the final fully connected layer: PyTorch's `nn.Linear` default (uniform
   * in ±1/√fan_in, weight and bias; torchvision keeps it), or He-normal weights with PyTorch's
   * default bias (the CIFAR reference).
   */
  readonly fcInit: 'pytorch-linear' | 'he-normal';
}

const IMAGENET_STEM: StemSpec = { kernel: 7, stride: 2, channels: 64, maxPool: true };
const CIFAR_STEM: StemSpec = { kernel: 3, stride: 1, channels: 16, maxPool: false };

function imagenet(name: string, block: BlockKind, blocksPerStage: readonly number[]): ArchitectureSpec {
  return {
    name,
    family: 'imagenet',
    block,
    blocksPerStage,
    stageWidths: [64, 128, 256, 512],
    stem: IMAGENET_STEM,
    inputSize: 224,
    defaultClasses: 1000,
    defaultShortcut: 'projection',
    labels: 'imagenet-1k',
    preprocess: IMAGENET_PREPROCESS,
    convInitFan: 'fan_out',
    fcInit: 'pytorch-linear',
  };
}

/** CIFAR ResNet of depth 6n + 2: three stages of n basic blocks. */
function cifar(depth: number): ArchitectureSpec {
  const n = (depth - 2) / 6;
  return {
    name: `resnet${depth}`,
    family: 'cifar',
    block: 'basic',
    blocksPerStage: [n, n, n],
    stageWidths: [16, 32, 64],
    stem: CIFAR_STEM,
    inputSize: 32,
    defaultClasses: 10,
    defaultShortcut: 'zeropad',
    labels: 'cifar10',
    preprocess: CIFAR_PREPROCESS,
    convInitFan: 'fan_in',
    fcInit: 'he-normal',
  };
}

export const ARCHITECTURES: Readonly<Record<string, ArchitectureSpec>> = Object.freeze({
  resnet18: imagenet('resnet18', 'basic', [2, 2, 2, 2]),
  resnet34: imagenet('resnet34', 'basic', [3, 4, 6, 3]),
  resnet50: imagenet('resnet50', 'bottleneck', [3, 4, 6, 3]),
  resnet101: imagenet('resnet101', 'bottleneck', [3, 4, 23, 3]),
  resnet152: imagenet('resnet152', 'bottleneck', [3, 8, 36, 3]),
  resnet20: cifar(20),
  resnet32: cifar(32),
  resnet44: cifar(44),
  resnet56: cifar(56),
  resnet110: cifar(110),
});

export const ARCHITECTURE_NAMES: readonly string[] = Object.freeze(Object.keys(ARCHITECTURES));

export function getArchitecture(name: string): ArchitectureSpec {
  const spec = Object.hasOwn(ARCHITECTURES, name) ? ARCHITECTURES[name] : undefined;
  if (!spec) throw new RangeError(`Unknown architecture \`${name}\`; expected one of ${ARCHITECTURE_NAMES.join(', ')}`);
  return spec;
}

/** Channels a block of this kind outputs for a stage of `planes`. */
export function blockOutChannels(block: BlockKind, planes: number): number {
  return block === 'bottleneck' ? planes * 4 : planes;
}
