/**
 * Fixtures and helpers for the preprocessing tests. The torchvision references were made once
 * by scripts/fixtures/torchvision-preprocess.py (see its docstring); shared images are read
 * from ../shared beside the repository, never copied into it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, crc32, deflateSync } from 'node:zlib';
import type { PreprocessSpec } from '../../../src/preprocess/index.js';
import { normalizationTables } from '../../../src/preprocess/tensor.js';
import { pngChunk, PNG_SIGNATURE } from '../../../bench/lib/png.js';
import { findRepoRoot } from '../../../bench/lib/repo-root.js';

export const repoRoot = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
export const fixturesDir = join(repoRoot, 'test', 'fixtures', 'preprocess');
export const sharedDir = join(repoRoot, '..', 'shared');

export interface FixtureCase {
  readonly name: string;
  readonly input: { readonly shared?: string; readonly fixture?: string };
  readonly spec: string;
  readonly format: string;
  readonly width: number;
  readonly height: number;
  readonly reference: string;
  readonly torchvision: { readonly samples: ReadonlyArray<readonly [number, number]>; readonly sum: number };
}

export interface Manifest {
  readonly specs: Readonly<Record<string, PreprocessSpec>>;
  readonly cases: readonly FixtureCase[];
}

export function loadManifest(): Manifest {
  return JSON.parse(readFileSync(join(fixturesDir, 'manifest.json'), 'utf8')) as Manifest;
}

export function inputPath(c: FixtureCase): string {
  if (c.input.shared !== undefined) return join(sharedDir, c.input.shared);
  if (c.input.fixture !== undefined) return join(fixturesDir, 'inputs', c.input.fixture);
  throw new Error(`case ${c.name} has no input`);
}

export function readInput(c: FixtureCase): Uint8Array {
  return readFileSync(inputPath(c));
}

export function fixtureInput(name: string): Uint8Array {
  return readFileSync(join(fixturesDir, 'inputs', name));
}

/** Whether ../shared is present; tests that need it skip, saying so, when it is not. */
export const haveShared = existsSync(join(sharedDir, 'images', 'photos', 'chelsea.png'));

/**
 * torchvision's normalized CHW tensor for a case, rebuilt from its 8-bit crop with
 * torchvision's float32 arithmetic (the fixture script asserted this rebuild is exact).
 */
export function torchvisionTensor(c: FixtureCase, spec: PreprocessSpec): Float32Array {
  const u8 = gunzipSync(readFileSync(join(fixturesDir, c.reference)));
  const n = spec.crop * spec.crop;
  if (u8.length !== n * 3) throw new Error(`${c.reference}: ${u8.length} bytes for a ${spec.crop}² crop`);
  const tables = normalizationTables(spec);
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < 3; ch++) out[ch * n + i] = tables[ch as 0 | 1 | 2][u8[i * 3 + ch] as number] as number;
  }
  return out;
}

export interface Difference {
  readonly maxAbs: number;
  readonly meanAbs: number;
}

export function difference(a: Float32Array, b: Float32Array): Difference {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let maxAbs = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number));
    if (d > maxAbs) maxAbs = d;
    sum += d;
  }
  return { maxAbs, meanAbs: sum / a.length };
}

// ---- Hand-made and forged images ------------------------------------------------------

/**
 * A real, valid PNG of `width × height` 1-bit greyscale pixels, all black: a decompression
 * bomb (108 megapixels, about 300 MB once decoded to RGB) that compresses to a few kilobytes.
 */
export function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([1, 0, 0, 0, 0], 8); // bit depth 1, greyscale, deflate, filter 0, no interlace
  const rowBytes = 1 + Math.ceil(width / 8);
  const raw = Buffer.alloc(rowBytes * height); // filter byte 0 and black pixels: all zeros
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(raw, { level: 9 })), pngChunk('IEND', new Uint8Array(0))]);
}

/** A copy of a PNG whose IHDR claims another size, with a correct CRC so only the size lies. */
export function forgePngSize(png: Uint8Array, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)) >>> 0, 29);
  return out;
}

/** A copy of a JPEG whose frame header (SOF0/1/2) claims another size. */
export function forgeJpegSize(jpeg: Uint8Array, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  let offset = 2;
  while (offset + 4 < out.length) {
    if (out[offset] !== 0xff) throw new Error('not at a JPEG marker');
    const marker = out[offset + 1] as number;
    const length = out.readUInt16BE(offset + 2);
    if (marker >= 0xc0 && marker <= 0xc2) {
      out.writeUInt16BE(height, offset + 5);
      out.writeUInt16BE(width, offset + 7);
      return out;
    }
    offset += 2 + length;
  }
  throw new Error('no SOF marker found');
}

/** A copy of a GIF whose logical screen and first image descriptor claim another size. */
export function forgeGifSize(gif: Uint8Array, width: number, height: number): Buffer {
  const out = Buffer.from(gif);
  out.writeUInt16LE(width, 6);
  out.writeUInt16LE(height, 8);
  const flags = out[10] as number;
  let offset = 13 + (flags & 0x80 ? 3 * (1 << ((flags & 7) + 1)) : 0);
  // Skip extension blocks up to the first image descriptor.
  while (out[offset] === 0x21) {
    offset += 2;
    while ((out[offset] as number) !== 0) offset += 1 + (out[offset] as number);
    offset += 1;
  }
  if (out[offset] !== 0x2c) throw new Error('no GIF image descriptor found');
  out.writeUInt16LE(width, offset + 5);
  out.writeUInt16LE(height, offset + 7);
  return out;
}
