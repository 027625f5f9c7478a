/**
 * The phone-photo set (test/fixtures/phone-photos/README.md): where it is, making it when it is
 * absent, and the torchvision references made from it once. Shared by the fidelity test and
 * the preprocessing benchmarks.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { findRepoRoot } from './repo-root.js';

const repoRoot = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
export const phoneFixturesDir = join(repoRoot, 'test', 'fixtures', 'phone-photos');
/** The generator: Debian's Python and Pillow (python3-pil), apt-get and dpkg-deb. */
export const PHONE_PHOTOS_COMMAND = ['/usr/bin/python3', join(repoRoot, 'scripts', 'fixtures', 'phone-photos.py')] as const;

/** Where the generated images are: `$PHONE_PHOTOS_DIR`, else test-output/phone-photos. */
export function phonePhotosDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.PHONE_PHOTOS_DIR || join(repoRoot, 'test-output', 'phone-photos');
}

export interface PhonePhoto {
  readonly name: string;
  /** Size as displayed (EXIF orientation applied), as made. */
  readonly width: number;
  readonly height: number;
  readonly format: 'jpeg' | 'webp';
  readonly orientation?: number;
  readonly progressive?: boolean;
  readonly sha256: string;
}

export function loadPhoneManifest(): { readonly images: readonly PhonePhoto[] } {
  return JSON.parse(readFileSync(join(phoneFixturesDir, 'manifest.json'), 'utf8')) as { images: PhonePhoto[] };
}

/**
 * Makes (or checks) the set by running the generator, which keeps files already there with the
 * right hash, and returns its folder. Throws with the generator's output when it cannot.
 */
export function ensurePhonePhotos(env: NodeJS.ProcessEnv = process.env): string {
  const dir = phonePhotosDir(env);
  const [python, script] = PHONE_PHOTOS_COMMAND;
  if (!existsSync(python)) throw new Error(`${python} is absent; the phone photos need Debian's python3 and python3-pil`);
  execFileSync(python, [script, '--out', dir], { stdio: ['ignore', 'ignore', 'pipe'], env });
  return dir;
}

export function readPhonePhoto(dir: string, photo: PhonePhoto): Buffer {
  return readFileSync(join(dir, photo.name));
}

function readRefs<T>(file: string): T {
  return JSON.parse(gunzipSync(readFileSync(join(phoneFixturesDir, 'refs', file))).toString('utf8')) as T;
}

/** torchvision's 32×32 centre crops (8-bit RGB, HWC) for the ResNet-20 CIFAR-10 spec. */
export function loadCifarRefs(): ReadonlyMap<string, Uint8Array> {
  const { crops } = readRefs<{ crops: Record<string, string> }>('resnet20-cifar10.json.gz');
  return new Map(Object.entries(crops).map(([name, b64]) => [name, new Uint8Array(Buffer.from(b64, 'base64'))]));
}

/** torchvision ResNet-50 (seed 0) logits per image, as torch computed them, and the sha256 of its ONNX export. */
export function loadResnet50Refs(): { readonly onnxSha256: string; readonly logits: ReadonlyMap<string, Float32Array> } {
  const { onnxSha256, logits } = readRefs<{ onnxSha256: string; logits: Record<string, string> }>('resnet50-seed0.json.gz');
  const out = new Map<string, Float32Array>();
  for (const [name, b64] of Object.entries(logits)) {
    const bytes = Buffer.from(b64, 'base64');
    out.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)));
  }
  return { onnxSha256, logits: out };
}

/** The torchvision ResNet-50 export the references were made with, made on demand (needs python3-torchvision). */
export function ensureResnet50Export(dir: string): string {
  const path = join(dir, 'torchvision-resnet50-seed0.onnx');
  if (!existsSync(path)) {
    execFileSync('/usr/bin/python3', [join(repoRoot, 'scripts', 'fixtures', 'torchvision-export.py'), '--arch', 'resnet50', '--seed', '0', '--out', path], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }
  return path;
}

export function softmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp((logits[i] as number) - max);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / sum;
  return out;
}

export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

/** Pearson's correlation: the cosine of the centred vectors. */
export function correlation(a: Float32Array, b: Float32Array): number {
  const centre = (v: Float32Array) => {
    let m = 0;
    for (const x of v) m += x;
    m /= v.length;
    return v.map((x) => x - m);
  };
  return cosine(centre(a), centre(b));
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return dot / Math.sqrt(na * nb);
}
