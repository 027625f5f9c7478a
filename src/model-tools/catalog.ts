/**
 * Pretrained ResNets `model:fetch` knows: public ONNX files with their exact size, sha256,
 * input and preprocessing. Only files whose size and digest were found published are listed;
 * the note on each entry says where they come from.
 */
import type { LabelSet } from './architectures.js';
import type { PreprocessConfig } from './model-config.js';
import { IMAGENET_PREPROCESS } from './model-config.js';

export interface CatalogEntry {
  /** Name on the command line and of the model folder. */
  readonly name: string;
  /** Other accepted names, e.g. the file's own name. */
  readonly aliases: readonly string[];
  /** File name, appended to the base URL. */
  readonly file: string;
  /** Folder URL the file is fetched from, ending in `/`; `--base-url` replaces it. */
  readonly baseUrl: string;
  readonly sizeBytes: number;
  /** Lower-case hex sha256 of the whole file. */
  readonly sha256: string;
  /** Where size and sha256 were read from. */
  readonly checksumSource: string;
  readonly description: string;
  readonly page: string;
  readonly license: string;
  readonly input: { readonly name: string; readonly shape: readonly (number | string)[] };
  readonly outputName: string;
  readonly preprocess: PreprocessConfig;
  readonly labels: LabelSet;
}

const ONNX_ZOO_RESNET = 'https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/';
const ONNX_ZOO_PAGE = 'https://github.com/onnx/models/tree/main/validated/vision/classification/resnet';

/**
 * The Model Zoo's ResNets are MXNet Gluon models converted to ONNX (opset 7). Their README:
 * resize the shorter side to 256, centre-crop 224, normalise with mean 255·[0.485, 0.456,
 * 0.406] and std 255·[0.229, 0.224, 0.225], RGB, CHW; the output is 1000 unnormalised scores
 * in the standard ImageNet class order.
 */
const ZOO = {
  baseUrl: ONNX_ZOO_RESNET,
  page: ONNX_ZOO_PAGE,
  license: 'Apache-2.0',
  input: { name: 'data', shape: ['N', 3, 224, 224] },
  preprocess: IMAGENET_PREPROCESS,
  labels: 'imagenet-1k',
} as const;

export const CATALOG: readonly CatalogEntry[] = Object.freeze([
  {
    ...ZOO,
    name: 'resnet50-v1',
    aliases: ['resnet50-v1-7'],
    file: 'resnet50-v1-7.onnx',
    sizeBytes: 102_583_340,
    sha256: 'af16a04a6ec48ac494065d4439fe9dea590d337b9ca6dc328160ccf04a217b9c',
    checksumSource:
      'not in the onnx/models Git LFS pointers at hand; sha256 as pinned by third-party projects fetching ' +
      'validated/.../resnet50-v1-7.onnx, size confirmed by a mirror and a download log',
    description: 'ResNet-50 v1 from the ONNX Model Zoo (MXNet Gluon, opset 7), ImageNet top-1 74.93 % as published',
    outputName: 'resnetv17_dense0_fwd',
  },
  {
    ...ZOO,
    name: 'resnet50-v2',
    aliases: ['resnet50-v2-7'],
    file: 'resnet50-v2-7.onnx',
    sizeBytes: 102_442_450,
    sha256: '1e80e8a7c8eec8e8b20c440d7dd7f2f8590779c7c2859dc4514870dc463845d3',
    checksumSource: 'Git LFS pointer of onnx/models vision/classification/resnet/model/resnet50-v2-7.onnx (commit b9a54e8)',
    description: 'ResNet-50 v2 (pre-activation) from the ONNX Model Zoo (MXNet Gluon, opset 7), ImageNet top-1 75.81 % as published',
    outputName: 'resnetv24_dense0_fwd',
  },
  {
    ...ZOO,
    name: 'resnet18-v1',
    aliases: ['resnet18-v1-7'],
    file: 'resnet18-v1-7.onnx',
    sizeBytes: 46_820_737,
    sha256: '4e8f8653e7a2222b3904cc3fe8e304cd8b339ce1d05fd24688162f86fb6df52c',
    checksumSource:
      'Git LFS pointer of onnx/models vision/classification/resnet/model/resnet18-v1-7.onnx (commit 5372b0b); ' +
      'third-party pins of the validated/ path agree',
    description: 'ResNet-18 v1 from the ONNX Model Zoo (MXNet Gluon, opset 7), ImageNet top-1 69.93 % as published',
    outputName: 'resnetv15_dense0_fwd',
  },
]);

/** Finds an entry by name or alias. */
export function findCatalogEntry(name: string, catalog: readonly CatalogEntry[] = CATALOG): CatalogEntry | undefined {
  return catalog.find((e) => e.name === name || e.aliases.includes(name));
}
