/**
 * ResNet graphs, layer for layer as torchvision (ImageNet) and He et al. 2016 §4.2 (CIFAR) build
 * them, with batch norm folded into the convolutions. Every residual block computes
 * `a[l+2] = relu(z[l+2] + shortcut(a[l]))`; the shortcut is the identity where shapes match,
 * else a projection (learned 1×1 convolution, stride 2 where the block subsamples) or the
 * identity subsampled and padded with zero channels (He et al.'s option A).
 *
 * Tensor names follow PyTorch's module names: parameters are `layer2.0.conv1.weight`, a block's
 * output tensor is `layer2.0.out`, the stem's is `maxpool` (ImageNet) or `relu` (CIFAR).
 */
import type { ArchitectureSpec, BlockKind, ShortcutKind } from './architectures.js';
import { blockOutChannels } from './architectures.js';
import { GraphBuilder } from './graph-builder.js';
import type { OnnxGraph, OnnxModel } from './onnx-graph.js';
import type { Random } from './prng.js';
import { createRandom } from './prng.js';
import { foldBatchNorm, freshBatchNorm, heNormalConv, linearParams } from './weights.js';

/** Operator-set version of the graphs written (`Slice` and `Pad` take their parameters as inputs from 13 on). */
export const OPSET_VERSION = 13;
export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'logits';
export const BATCH_DIM = 'batch';

export interface ResNetGraphOptions {
  readonly classes: number;
  readonly shortcut: ShortcutKind;
  readonly seed: number;
}

export interface BlockSpec {
  readonly block: BlockKind;
  readonly inChannels: number;
  /** Channels of the block's 3×3 convolution(s); a bottleneck outputs 4× as many. */
  readonly planes: number;
  /** 2 where the block halves height and width (on its 3×3 convolution, ResNet v1.5). */
  readonly stride: number;
  readonly shortcut: ShortcutKind;
}

/** Draws the (batch-norm folded) parameters of convolutions in the order the graph uses them. */
class ConvFactory {
  constructor(
    private readonly random: Random,
    private readonly fan: 'fan_in' | 'fan_out',
  ) {}

  conv(outChannels: number, inChannels: number, kernel: number, stride: number) {
    const raw = heNormalConv(this.random, outChannels, inChannels, kernel, this.fan);
    const { weight, bias } = foldBatchNorm(raw, outChannels, freshBatchNorm(outChannels));
    return { weight, bias, outChannels, inChannels, kernel, stride, pad: (kernel - 1) / 2 };
  }
}

function needsShortcutTransform(spec: BlockSpec): boolean {
  return spec.stride !== 1 || spec.inChannels !== blockOutChannels(spec.block, spec.planes);
}

/** Adds one residual block reading tensor `x`; returns the name of its output tensor. */
function addResidualBlock(g: GraphBuilder, convs: ConvFactory, prefix: string, x: string, spec: BlockSpec): string {
  const { block, inChannels, planes, stride } = spec;
  const outChannels = blockOutChannels(block, planes);

  let z: string;
  if (block === 'basic') {
    const a1 = g.relu(`${prefix}.relu1`, g.conv(`${prefix}.conv1`, x, convs.conv(planes, inChannels, 3, stride)));
    z = g.conv(`${prefix}.conv2`, a1, convs.conv(planes, planes, 3, 1));
  } else {
    const a1 = g.relu(`${prefix}.relu1`, g.conv(`${prefix}.conv1`, x, convs.conv(planes, inChannels, 1, 1)));
    const a2 = g.relu(`${prefix}.relu2`, g.conv(`${prefix}.conv2`, a1, convs.conv(planes, planes, 3, stride)));
    z = g.conv(`${prefix}.conv3`, a2, convs.conv(outChannels, planes, 1, 1));
  }

  let shortcut = x;
  if (needsShortcutTransform(spec)) {
    if (spec.shortcut === 'projection') {
      shortcut = g.conv(`${prefix}.downsample`, x, convs.conv(outChannels, inChannels, 1, stride));
    } else {
      if (outChannels < inChannels) {
        throw new RangeError(`${prefix}: a zero-pad shortcut cannot reduce ${inChannels} channels to ${outChannels}`);
      }
      if (stride !== 1) shortcut = g.subsample(`${prefix}.shortcut.subsample`, shortcut, stride);
      if (outChannels > inChannels) {
        // Split the new channels evenly around the old ones, as the CIFAR reference does
        // (`F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`).
        const extra = outChannels - inChannels;
        shortcut = g.padChannels(`${prefix}.shortcut.pad`, shortcut, Math.floor(extra / 2), Math.ceil(extra / 2));
      }
    }
  }
  return g.relu(`${prefix}.out`, g.add(`${prefix}.add`, z, shortcut));
}

function validateGraphOptions(options: ResNetGraphOptions): void {
  if (!Number.isInteger(options.classes) || options.classes < 1) {
    throw new RangeError(`Expected \`classes\` to be an integer from 1 and up, got \`${options.classes}\``);
  }
  if (options.shortcut !== 'projection' && options.shortcut !== 'zeropad') {
    throw new RangeError(`Expected \`shortcut\` to be "projection" or "zeropad", got \`${String(options.shortcut)}\``);
  }
}

/** Builds the whole network: input `input` `[batch, 3, S, S]`, output `logits` `[batch, classes]`. */
export function buildResNetGraph(arch: ArchitectureSpec, options: ResNetGraphOptions): OnnxGraph {
  validateGraphOptions(options);
  const convs = new ConvFactory(createRandom(options.seed), arch.convInitFan);
  // The fully connected layer draws from its own stream, so its initialisation does not
  // depend on how many convolution weights were drawn before it.
  const fcRandom = createRandom((options.seed ^ 0x5f3759df) >>> 0);
  const g = new GraphBuilder(arch.name);
  const size = arch.inputSize;
  let x = g.input({ name: INPUT_NAME, elementType: 'float32', shape: [BATCH_DIM, 3, size, size] });

  const { stem } = arch;
  x = g.relu('relu', g.conv('conv1', x, convs.conv(stem.channels, 3, stem.kernel, stem.stride)));
  if (stem.maxPool) x = g.maxPool('maxpool', x, 3, 2, 1);

  let channels = stem.channels;
  arch.stageWidths.forEach((planes, stage) => {
    const blocks = arch.blocksPerStage[stage] ?? 0;
    for (let i = 0; i < blocks; i++) {
      const spec: BlockSpec = { block: arch.block, inChannels: channels, planes, stride: i === 0 && stage > 0 ? 2 : 1, shortcut: options.shortcut };
      x = addResidualBlock(g, convs, `layer${stage + 1}.${i}`, x, spec);
      channels = blockOutChannels(arch.block, planes);
    }
  });

  const pooled = g.flatten('flatten', g.globalAveragePool('avgpool', x));
  const fc = linearParams(fcRandom, channels, options.classes, arch.fcInit);
  g.linear('fc', pooled, fc.weight, fc.bias, channels, options.classes, OUTPUT_NAME);
  g.output({ name: OUTPUT_NAME, elementType: 'float32', shape: [BATCH_DIM, options.classes] });
  return g.build();
}

export interface BlockGraphOptions extends BlockSpec {
  /** Height and width of the block's input. */
  readonly size: number;
  readonly seed: number;
  /**
   * Sets every weight and bias of the residual branch (not of a projection shortcut) to zero,
   * so the block computes `relu(shortcut(x))`.
   * @default false
   */
  readonly zeroResidualBranch?: boolean;
}

/**
 * One residual block as a model of its own, input `x` `[batch, inChannels, size, size]`, output
 * `y`: lets tests check what a block does to its input.
 */
export function buildBlockModel(options: BlockGraphOptions): OnnxModel {
  const g = new GraphBuilder(`${options.block}-block`);
  const x = g.input({ name: 'x', elementType: 'float32', shape: [BATCH_DIM, options.inChannels, options.size, options.size] });
  const y = addResidualBlock(g, new ConvFactory(createRandom(options.seed), 'fan_in'), 'block', x, options);
  const outChannels = blockOutChannels(options.block, options.planes);
  const outSize = Math.floor((options.size - 1) / options.stride) + 1;
  g.output({ name: y, elementType: 'float32', shape: [BATCH_DIM, outChannels, outSize, outSize] });
  let graph = g.build();
  if (options.zeroResidualBranch) {
    graph = {
      ...graph,
      initializers: graph.initializers.map((init) =>
        /^block\.conv\d\.(weight|bias)$/.test(init.name) && init.elementType === 'float32' ? { ...init, data: new Float32Array(init.data.length) } : init,
      ),
    };
  }
  return wrapGraph(graph, []);
}

/** Wraps a graph into a model with this builder's opset and producer. */
export function wrapGraph(graph: OnnxGraph, metadata: ReadonlyArray<readonly [string, string]>, docString = ''): OnnxModel {
  return {
    graph,
    opsetVersion: OPSET_VERSION,
    producerName: 'resnet-serve model-tools',
    // Fixed, not the package version, so the same command gives the same bytes across releases
    // unless the graph itself changes; bump it when it does.
    producerVersion: '1',
    docString,
    metadata,
  };
}
