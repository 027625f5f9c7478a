/**
 * The `config.json` the model tools write beside a `model.onnx`: the server's per-model config
 * (read by src/serving/model-config.ts, which rejects unknown fields). Every field is optional
 * for the server; the tools always write all of them.
 */
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../preprocess/spec.js';

/** The preprocessing a model config records: the server's own PreprocessSpec. */
export type PreprocessConfig = PreprocessSpec;

export { IMAGENET_PREPROCESS };

export interface ModelConfigFile {
  readonly version: '1';
  /** Labels file, relative to the model folder, one class name a line in output order. */
  readonly labels: string;
  readonly preprocess: PreprocessConfig;
  /** What the graph's (single) output holds: raw scores that need a softmax, or probabilities. */
  readonly output: 'logits' | 'probabilities';
  /** Whether the weights were learned; `false` means the predictions are meaningless. */
  readonly trained: boolean;
  readonly description: string;
  /** Where the model came from: builder options, or the download it was fetched from. */
  readonly source: Readonly<Record<string, unknown>>;
}

/**
 * 32×32 CIFAR input. The mean/std are ImageNet's, as used to train the ResNet-20 in
 * ../shared/models/resnet20-cifar10 (see its README), so a built CIFAR graph is a drop-in
 * stand-in for it.
 */
export const CIFAR_PREPROCESS: PreprocessConfig = Object.freeze<PreprocessConfig>({ ...IMAGENET_PREPROCESS, resize: 32, crop: 32 });
