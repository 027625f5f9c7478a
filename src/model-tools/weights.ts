/**
 * Initial weights, drawn as PyTorch initialises a fresh ResNet, and batch-norm folding, so a
 * built graph holds what `torch.onnx.export` of that untrained network in eval mode would.
 */
import type { Random } from './prng.js';

/** A batch norm's learned affine and running statistics, one value per channel. */
export interface BatchNormParams {
  readonly gamma: Float32Array;
  readonly beta: Float32Array;
  readonly runningMean: Float32Array;
  readonly runningVar: Float32Array;
  /** @default 1e-5 (PyTorch's `BatchNorm2d`) */
  readonly eps?: number;
}

/** A fresh PyTorch `BatchNorm2d`: γ = 1, β = 0, running mean 0, running variance 1. */
export function freshBatchNorm(channels: number): BatchNormParams {
  return {
    gamma: new Float32Array(channels).fill(1),
    beta: new Float32Array(channels),
    runningMean: new Float32Array(channels),
    runningVar: new Float32Array(channels).fill(1),
  };
}

/**
 * Folds an inference-mode batch norm that follows a bias-free convolution into the
 * convolution: `W' = W · γ/√(σ² + ε)` per output channel and `b' = β − μ · γ/√(σ² + ε)`.
 * Returns new arrays; `weight` is `[outChannels, ...]` row-major.
 */
export function foldBatchNorm(weight: Float32Array, outChannels: number, bn: BatchNormParams): { weight: Float32Array; bias: Float32Array } {
  const eps = bn.eps ?? 1e-5;
  const perChannel = weight.length / outChannels;
  const folded = new Float32Array(weight.length);
  const bias = new Float32Array(outChannels);
  for (let c = 0; c < outChannels; c++) {
    const scale = (bn.gamma[c] ?? 1) / Math.sqrt((bn.runningVar[c] ?? 1) + eps);
    bias[c] = (bn.beta[c] ?? 0) - (bn.runningMean[c] ?? 0) * scale;
    const start = c * perChannel;
    for (let i = start; i < start + perChannel; i++) folded[i] = (weight[i] ?? 0) * scale;
  }
  return { weight: folded, bias };
}

/** He-normal (`kaiming_normal_`, ReLU gain √2) convolution weight `[out, in, k, k]`. */
export function heNormalConv(random: Random, outChannels: number, inChannels: number, kernel: number, fan: 'fan_in' | 'fan_out'): Float32Array {
  const fanSize = (fan === 'fan_out' ? outChannels : inChannels) * kernel * kernel;
  return random.fillNormal(new Float32Array(outChannels * inChannels * kernel * kernel), Math.sqrt(2 / fanSize));
}

/** Fully connected weight `[out, in]` and bias `[out]`. */
export function linearParams(
  random: Random,
  inFeatures: number,
  outFeatures: number,
  init: 'pytorch-linear' | 'he-normal',
): { weight: Float32Array; bias: Float32Array } {
  // PyTorch's nn.Linear default: kaiming_uniform_(a=√5) gives U(±1/√fan_in) for the weight,
  // and the bias is U(±1/√fan_in) too.
  const bound = 1 / Math.sqrt(inFeatures);
  const weight = new Float32Array(outFeatures * inFeatures);
  if (init === 'he-normal') random.fillNormal(weight, Math.sqrt(2 / inFeatures));
  else random.fillUniform(weight, -bound, bound);
  const bias = random.fillUniform(new Float32Array(outFeatures), -bound, bound);
  return { weight, bias };
}
