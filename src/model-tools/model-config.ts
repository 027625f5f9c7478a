/**
 * What the model tools write beside a `model.onnx`: the server's own `config.json` type
 * (src/serving/model-config.ts, which also validates it), with every field filled in.
 */
import { IMAGENET_PREPROCESS, type PreprocessSpec } from '../preprocess/spec.js';
import type { ModelConfigFile } from '../serving/model-config.js';

/** The preprocessing a model config records: the server's own PreprocessSpec. */
export type PreprocessConfig = PreprocessSpec;

export { IMAGENET_PREPROCESS };

/**
 * A `config.json` as the tools write it: no field left to the server's defaults, and the whole
 * preprocessing spec, so the file says what the model expects without reading the graph. The
 * tools write flat model folders, where a version policy does not apply.
 */
export type WrittenModelConfig = Required<Omit<ModelConfigFile, 'version_policy'>> & { readonly preprocess: PreprocessConfig };

/**
 * 32×32 CIFAR input. The mean/std are ImageNet's, as used to train the ResNet-20 in
 * ../shared/models/resnet20-cifar10 (see its README), so a built CIFAR graph is a drop-in
 * stand-in for it.
 */
export const CIFAR_PREPROCESS: PreprocessConfig = Object.freeze<PreprocessConfig>({ ...IMAGENET_PREPROCESS, resize: 32, crop: 32 });
