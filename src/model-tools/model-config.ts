/**
 * The `config.json` the model tools write beside a `model.onnx`: the server's per-model config
 * (read by src/serving/model-config.ts, which rejects unknown fields). Every field is optional
 * for the server; the tools always write all of them.
 */
export interface PreprocessConfig {
  /** Shorter image side after resizing, in pixels. */
  readonly resize: number;
  /** Side of the centre crop taken after resizing, in pixels. */
  readonly crop: number;
  /** Per-channel mean, subtracted after dividing by `scale`. */
  readonly mean: readonly [number, number, number];
  /** Per-channel standard deviation, divided by after subtracting `mean`. */
  readonly std: readonly [number, number, number];
  /** Pixel values (0–255) are divided by this first. */
  readonly scale: number;
  readonly channels: 'RGB' | 'BGR';
  readonly layout: 'NCHW' | 'NHWC';
}

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

/** torchvision's ImageNet normalisation, used by its ResNets and by the ONNX Model Zoo's. */
export const IMAGENET_PREPROCESS: PreprocessConfig = Object.freeze<PreprocessConfig>({
  resize: 256,
  crop: 224,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  scale: 255,
  channels: 'RGB',
  layout: 'NCHW',
});

/**
 * 32×32 CIFAR input. The mean/std are ImageNet's, as used to train the ResNet-20 in
 * ../shared/models/resnet20-cifar10 (see its README), so a built CIFAR graph is a drop-in
 * stand-in for it.
 */
export const CIFAR_PREPROCESS: PreprocessConfig = Object.freeze<PreprocessConfig>({
  resize: 32,
  crop: 32,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  scale: 255,
  channels: 'RGB',
  layout: 'NCHW',
});
