/**
 * How close the server's preprocessing of the phone-photo set comes to torchvision's full
 * decode, through two models (bench/lib/phone-photos.ts has the set and the references):
 * - the trained ResNet-20 CIFAR-10 (Resize(32), CenterCrop(32): reductions of 34–95×, the
 *   hardest case for shrink-on-load), run here on both tensors, torchvision's rebuilt from its
 *   8-bit crop, so the probabilities differ by preprocessing alone; and the tensors themselves;
 * - torchvision's ResNet-50 with seed-0 random weights (Resize(256), CenterCrop(224)), against
 *   the logits torch computed. These weights name one class for 100 of the 104 photos, with
 *   probability ~0.9, so its top-1 and probability cosine say little; the logits' correlation
 *   and the 224×224 tensors (when the reference crops are at hand) say more.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSession, type OnnxSession } from '../../src/inference/onnx-binding.js';
import { createImagePreprocessor, IMAGENET_PREPROCESS, type PreprocessSpec } from '../../src/preprocess/index.js';
import { normalizationTables } from '../../src/preprocess/tensor.js';
import { argmax, correlation, cosine, loadCifarRefs, loadPhoneManifest, loadResnet50Refs, readPhonePhoto, softmax, type PhonePhoto } from './phone-photos.js';

export type DecodeMode = PreprocessSpec['decode'];

export interface ModelAgreement {
  readonly images: number;
  /** Fraction of images whose top-1 class is torchvision's. */
  readonly top1Agreement: number;
  /** Mean over images of the cosine between the two probability vectors. */
  readonly meanCosine: number;
  readonly minCosine: number;
  /** Mean over images of the correlation of the two logit vectors: sensitive where probabilities saturate. */
  readonly meanLogitCorrelation: number;
  /** Over every element of every image's normalized tensor, where the reference tensor is known. */
  readonly tensorMaxAbs?: number;
  readonly tensorMeanAbs?: number;
}

export const CIFAR_SPEC = (decode: DecodeMode): PreprocessSpec => ({ ...IMAGENET_PREPROCESS, resize: 32, crop: 32, decode });
export const IMAGENET_SPEC = (decode: DecodeMode): PreprocessSpec => ({ ...IMAGENET_PREPROCESS, decode });

const MAX_PIXELS = 40_000_000;

/** torchvision's normalized CHW tensor from its 8-bit HWC crop (exact, as in test/fixtures/preprocess). */
export function tensorFromCrop(u8: Uint8Array, spec: PreprocessSpec): Float32Array {
  const n = spec.crop * spec.crop;
  const tables = normalizationTables(spec);
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < 3; ch++) out[ch * n + i] = tables[ch as 0 | 1 | 2][u8[i * 3 + ch] as number] as number;
  return out;
}

async function logitsOf(session: OnnxSession, tensors: readonly Float32Array[], crop: number, batch: number): Promise<Float32Array[]> {
  const per = 3 * crop * crop;
  const input = session.inputs[0]?.name ?? 'input';
  const out: Float32Array[] = [];
  for (let start = 0; start < tensors.length; start += batch) {
    const part = tensors.slice(start, start + batch);
    const data = new Float32Array(part.length * per);
    part.forEach((t, i) => data.set(t, i * per));
    const outputs = await session.run({ [input]: { data, dims: [part.length, 3, crop, crop] } });
    const logits = Object.values(outputs)[0];
    if (!logits) throw new Error('the model returned no output');
    const classes = logits.data.length / part.length;
    for (let i = 0; i < part.length; i++) out.push(logits.data.slice(i * classes, (i + 1) * classes));
  }
  return out;
}

/** Compares two models' logits, image by image. */
function agreement(ours: readonly Float32Array[], theirs: readonly Float32Array[]): Omit<ModelAgreement, 'tensorMaxAbs' | 'tensorMeanAbs'> {
  let same = 0;
  let sum = 0;
  let min = Infinity;
  let correlations = 0;
  ours.forEach((a, i) => {
    const b = theirs[i] as Float32Array;
    if (argmax(a) === argmax(b)) same++;
    const c = cosine(softmax(a), softmax(b));
    sum += c;
    min = Math.min(min, c);
    correlations += correlation(a, b);
  });
  const n = ours.length;
  return { images: n, top1Agreement: same / n, meanCosine: sum / n, minCosine: min, meanLogitCorrelation: correlations / n };
}

function tensorDifference(pairs: ReadonlyArray<readonly [Float32Array, Float32Array]>): { tensorMaxAbs: number; tensorMeanAbs: number } {
  let max = 0;
  let sum = 0;
  let count = 0;
  for (const [a, b] of pairs) {
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs((a[i] as number) - (b[i] as number));
      if (d > max) max = d;
      sum += d;
    }
    count += a.length;
  }
  return { tensorMaxAbs: max, tensorMeanAbs: sum / count };
}

async function preprocessAll(dir: string, photos: readonly PhonePhoto[], spec: PreprocessSpec): Promise<Float32Array[]> {
  const preprocessor = createImagePreprocessor(spec, { maxPixels: MAX_PIXELS });
  const out: Float32Array[] = [];
  // One at a time: the 12 MP decodes of the exact path take ~40 MB each.
  for (const photo of photos) out.push((await preprocessor.preprocess(readPhonePhoto(dir, photo))).data);
  return out;
}

/** ResNet-20 CIFAR-10 (`modelPath`, the shared trained model) against torchvision's crops. */
export async function measureCifar(dir: string, modelPath: string, decode: DecodeMode): Promise<ModelAgreement> {
  const photos = loadPhoneManifest().images;
  const refs = loadCifarRefs();
  const spec = CIFAR_SPEC(decode);
  const ours = await preprocessAll(dir, photos, spec);
  const theirs = photos.map((p) => tensorFromCrop(refs.get(p.name) ?? missing(p.name), spec));
  const session = await openSession(modelPath, { intraOpThreads: 1 });
  try {
    const [a, b] = [await logitsOf(session, ours, 32, 128), await logitsOf(session, theirs, 32, 128)];
    return { ...agreement(a, b), ...tensorDifference(ours.map((t, i) => [t, theirs[i] as Float32Array] as const)) };
  } finally {
    await session.release();
  }
}

/**
 * torchvision ResNet-50 (seed 0, the export at `modelPath`) against torch's probabilities. The
 * 224×224 tensors are compared too when the reference script's crops are in `dir`/refs-224
 * (made locally, not committed).
 */
export async function measureResnet50(dir: string, modelPath: string, decode: DecodeMode): Promise<ModelAgreement> {
  const photos = loadPhoneManifest().images;
  const refs = loadResnet50Refs();
  const spec = IMAGENET_SPEC(decode);
  const ours = await preprocessAll(dir, photos, spec);
  const session = await openSession(modelPath);
  let logits: Float32Array[];
  try {
    logits = await logitsOf(session, ours, 224, 8);
  } finally {
    await session.release();
  }
  const result = agreement(
    logits,
    photos.map((p) => refs.logits.get(p.name) ?? missing(p.name)),
  );
  const crops = photos.map((p) => join(dir, 'refs-224', `${p.name}.u8`));
  if (!crops.every((c) => existsSync(c))) return result;
  return { ...result, ...tensorDifference(ours.map((t, i) => [t, tensorFromCrop(readFileSync(crops[i] as string), spec)] as const)) };
}

function missing(name: string): never {
  throw new Error(`no reference for ${name}`);
}
