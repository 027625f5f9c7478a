/**
 * Attack images, made at run time and never committed: deterministic generators for the tests
 * and the hostile benchmarks. Each is a real, decodable file whose cost to decode is out of all
 * proportion to its size, the two costs a server must bound before decoding:
 * - time: a progressive JPEG with thousands of (near-)empty scans;
 * - memory: an Adam7-interlaced PNG, which libvips must decode whole before it can crop.
 */
import { Readable } from 'node:stream';
import { createDeflate } from 'node:zlib';
import { createRandom } from '../../src/model-tools/prng.js';
import { pngChunk, PNG_SIGNATURE } from './png.js';

// ---------------------------------------------------------------------------------------------
// Progressive JPEG scan bomb
// ---------------------------------------------------------------------------------------------

export interface ScanBombOptions {
  readonly width: number;
  readonly height: number;
  /** Scans in the file, the first (DC) one included. */
  readonly scans: number;
  /**
   * `coefficient`: each AC scan holds one coefficient of one component, so the progression
   * stays valid, without a decoder warning, for up to {@link maxValidScans} scans (2,647 for
   * YCbCr, 3,529 for CMYK). That is how a real attack reaches thousands of scans: libvips
   * fails a JPEG at its 100th libjpeg warning.
   * `full`: each AC scan holds coefficients 1–63 of one component, the dearest empty scan to
   * decode (a refinement looks at all 63 coefficients of every block), valid for 14 scans a
   * component.
   * @default 'coefficient'
   */
  readonly band?: 'coefficient' | 'full';
  /** Colour components: 1 (grey), 3 (YCbCr) or 4 (CMYK). @default 3 */
  readonly components?: 1 | 3 | 4;
}

/**
 * Successive-approximation steps a coefficient can go through: a first scan with Al = 13 (the
 * most libjpeg accepts), then refinements down to Al = 0.
 */
const APPROXIMATION_STEPS = 14;

/** The most scans a valid progression of `band` scans can have (the DC scan included). */
export function maxValidScans(components: number, band: 'coefficient' | 'full' = 'coefficient'): number {
  return 1 + components * APPROXIMATION_STEPS * (band === 'coefficient' ? 63 : 1);
}

/** Bits to bytes, MSB first, with JPEG's byte stuffing (0xFF is followed by 0x00). */
class EntropyWriter {
  private readonly bytes: number[] = [];
  private current = 0;
  private used = 0;

  write(value: number, bits: number): void {
    for (let i = bits - 1; i >= 0; i--) {
      this.current = (this.current << 1) | ((value >>> i) & 1);
      if (++this.used === 8) this.flushByte();
    }
  }

  /** Pads the last byte with 1 bits, as T.81 F.1.2.3 asks, and returns the data. */
  finish(): Buffer {
    if (this.used > 0) this.write(0xff, 8 - this.used);
    return Buffer.from(this.bytes);
  }

  private flushByte(): void {
    this.bytes.push(this.current);
    if (this.current === 0xff) this.bytes.push(0x00);
    this.current = 0;
    this.used = 0;
  }
}

function segment(marker: number, body: readonly number[] | Uint8Array): Buffer {
  const head = Buffer.from([0xff, marker, 0, 0]);
  head.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([head, Buffer.from(body)]);
}

/** An end-of-band run over `blocks` blocks: EOBr symbols (AC table code r, 4 bits) and r extra bits. */
function endOfBandRun(out: EntropyWriter, blocks: number): void {
  for (let left = blocks; left > 0;) {
    const run = Math.min(left, 0x7fff); // EOB14 with 14 extra bits covers at most 32,767 blocks
    const r = 31 - Math.clz32(run);
    out.write(r, 4);
    out.write(run - (1 << r), r);
    left -= run;
  }
}

/**
 * A progressive JPEG of a flat mid-grey picture (every DCT coefficient zero) in `scans` scans:
 * one DC scan (a bit a block), then AC scans that each hold one end-of-band run over every
 * block, a few dozen bytes whatever the size. libjpeg runs every scan over every block of its
 * component, so the decode costs scans × pixels, and it holds the whole image's coefficients
 * (128 bytes a block) throughout. Past the valid progression the file repeats a refinement of
 * coefficient 63 of the last component, which libjpeg accepts with a warning
 * (JWRN_BOGUS_PROGRESSION); libvips decodes up to 99 of those and fails at the 100th.
 *
 * Measured with sharp 0.35.5 (libvips 8.18.7, mozjpeg) on a 2-core VM, decoding through the
 * server's preprocessor: 6324×6324 (40 megapixels), 4 components, 3,529 scans is 574 KB and
 * takes 21 s; 3 components, 2,647 scans, 431 KB, 16.5 s; 2048×2048, 2,647 scans, 71 KB, 0.9 s.
 * See MAX_JPEG_SCANS in src/preprocess/jpeg-scans.ts for the cost per scan.
 */
export function progressiveJpegScanBomb(options: ScanBombOptions): Buffer {
  const { width, height, scans } = options;
  const band = options.band ?? 'coefficient';
  const components = options.components ?? 3;
  if (!Number.isInteger(width) || width < 1 || width > 65_535) throw new RangeError(`Expected \`width\` from 1 to 65535, got \`${width}\``);
  if (!Number.isInteger(height) || height < 1 || height > 65_535) throw new RangeError(`Expected \`height\` from 1 to 65535, got \`${height}\``);
  if (!Number.isInteger(scans) || scans < 1) throw new RangeError(`Expected \`scans\` to be a whole number from 1 up, got \`${scans}\``);
  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8); // per component: 1×1 sampling

  const parts: Buffer[] = [Buffer.from([0xff, 0xd8])];
  parts.push(segment(0xdb, [0x00, ...new Array<number>(64).fill(1)])); // DQT 0: all ones
  const sof = [8, height >> 8, height & 0xff, width >> 8, width & 0xff, components];
  for (let c = 1; c <= components; c++) sof.push(c, 0x11, 0);
  parts.push(segment(0xc2, sof)); // SOF2: progressive, Huffman
  // DC table 0: one symbol, category 0 ("no difference"), code 0.
  parts.push(segment(0xc4, [0x00, 1, ...new Array<number>(15).fill(0), 0x00]));
  // AC table 0: EOB0–EOB14 (symbols 0x00–0xe0), 4-bit codes 0000–1110.
  parts.push(segment(0xc4, [0x10, 0, 0, 0, 15, ...new Array<number>(12).fill(0), ...Array.from({ length: 15 }, (_, r) => r << 4)]));

  const sos = (ids: readonly number[], ss: number, se: number, ah: number, al: number) =>
    segment(0xda, [ids.length, ...ids.flatMap((id) => [id, 0x00]), ss, se, (ah << 4) | al]);

  // DC first scan, all components interleaved, Al = 0: one 1-bit code a block.
  const dc = new EntropyWriter();
  for (let i = 0; i < blocks * components; i++) dc.write(0, 1);
  parts.push(
    sos(
      Array.from({ length: components }, (_, c) => c + 1),
      0,
      0,
      0,
      0,
    ),
    dc.finish(),
  );

  const empty = (() => {
    const w = new EntropyWriter();
    endOfBandRun(w, blocks);
    return w.finish();
  })();
  // The AC scans, in a valid order: per component, per band, a first scan then refinements.
  const bands: Array<[number, number]> = band === 'coefficient' ? Array.from({ length: 63 }, (_, k) => [k + 1, k + 1]) : [[1, 63]];
  let written = 1;
  outer: for (let c = 1; c <= components; c++) {
    for (const [ss, se] of bands) {
      for (let step = 0; step < APPROXIMATION_STEPS; step++) {
        if (written >= scans) break outer;
        const al = APPROXIMATION_STEPS - 1 - step;
        parts.push(sos([c], ss, se, step === 0 ? 0 : al + 1, al), empty);
        written++;
      }
    }
  }
  // Past the valid progression: a last refinement of one coefficient again, one warning each.
  const bogus = sos([components], 63, 63, 1, 0);
  for (; written < scans; written++) parts.push(bogus, empty);
  parts.push(Buffer.from([0xff, 0xd9]));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// Interlaced PNG bombs
// ---------------------------------------------------------------------------------------------

/** Adam7's passes: where each starts and how far it steps, in x and y. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

export interface InterlacedPngOptions {
  readonly width: number;
  readonly height: number;
  /** Bits a sample: 8 or 16. */
  readonly bitDepth: 8 | 16;
  /** PNG colour type: 2 truecolour (RGB) or 6 truecolour with alpha (RGBA). */
  readonly colourType: 2 | 6;
  /** One pixel's bytes, repeated over the picture (3 or 4 samples of `bitDepth` bits, big-endian). */
  readonly pixel: Uint8Array;
  /** Rows of seeded noise spread over the file, to make it bigger (harder to spot by size). @default 0 */
  readonly noiseRows?: number;
  /** Seed of the noise. @default 7 */
  readonly seed?: number;
}

/**
 * A valid Adam7-interlaced PNG of one colour (but for `noiseRows` rows of noise), deflated row
 * by row so its raw pixels never exist in this process: a 6324×6324 16-bit RGBA one (320 MB of
 * samples) deflates to 336 KB in about 0.9 s. Interlacing is the worst case for a server: libvips
 * streams a plain PNG through a crop in little memory, but must hold an interlaced one whole.
 */
export async function interlacedPng(options: InterlacedPngOptions): Promise<Buffer> {
  const { width, height, bitDepth, colourType, pixel } = options;
  const noiseRows = options.noiseRows ?? 0;
  const bytesPerPixel = ((colourType === 6 ? 4 : 3) * bitDepth) / 8;
  if (pixel.length !== bytesPerPixel) throw new RangeError(`Expected \`pixel\` of ${bytesPerPixel} bytes, got ${pixel.length}`);
  const random = createRandom(options.seed ?? 7);
  const passes = ADAM7.map(([x0, y0, dx, dy]) => ({ width: Math.max(0, Math.ceil((width - x0) / dx)), height: Math.max(0, Math.ceil((height - y0) / dy)) }))
    // An empty pass has no rows at all, not even filter bytes (PNG spec, 8.2).
    .filter((p) => p.width > 0 && p.height > 0);
  const totalRows = passes.reduce((a, p) => a + p.height, 0);
  const every = noiseRows > 0 ? Math.max(1, Math.floor(totalRows / noiseRows)) : 0;
  function* rows(): Generator<Buffer> {
    let n = 0;
    for (const pass of passes) {
      const flat = Buffer.alloc(1 + bytesPerPixel * pass.width); // filter 0 (None), then pixels
      for (let x = 0; x < pass.width; x++) flat.set(pixel, 1 + x * bytesPerPixel);
      // Filter 2 (Up) and all-zero differences: the row above again. Runs of one byte deflate
      // about a third smaller than a repeated multi-byte pixel (336 KB against 486 KB here).
      const same = Buffer.alloc(flat.length);
      same[0] = 2;
      let above: 'flat' | 'noise' | undefined;
      for (let y = 0; y < pass.height; y++, n++) {
        if (every === 0 || n % every !== every >> 1) {
          yield above === 'flat' ? same : flat;
          above = 'flat';
          continue;
        }
        const noise = Buffer.alloc(flat.length);
        for (let i = 1; i < noise.length; i++) noise[i] = Math.floor(random.uniform() * 256);
        yield noise;
        above = 'noise';
      }
    }
  }
  const deflated: Buffer[] = [];
  for await (const chunk of Readable.from(rows()).pipe(createDeflate({ level: 9 }))) deflated.push(chunk as Buffer);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([bitDepth, colourType, 0, 0, 1], 8); // deflate, filter method 0, Adam7
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', Buffer.concat(deflated)), pngChunk('IEND', Buffer.alloc(0))]);
}

/**
 * The memory bomb: an Adam7-interlaced 16-bit RGBA PNG of one opaque colour. At
 * 6324×6324 (40.0 megapixels, just under MAX_IMAGE_PIXELS) it is 336 KB. Measured with sharp
 * 0.35.5 (libvips 8.18.7) on a 2-core VM, sampling RSS every 2 ms: decoding it costs 305 MiB
 * above the baseline to extract a 32×32 crop and 332 MiB to resize it to 32×32 (0.5–0.6 s),
 * where a 40-megapixel baseline JPEG costs 0–2 MiB and a progressive one 115 MiB.
 */
export function interlacedPng16Rgba(width: number, height: number): Promise<Buffer> {
  const pixel = Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xff, 0xff]); // R, G, B, A (opaque)
  return interlacedPng({ width, height, bitDepth: 16, colourType: 6, pixel });
}

// ---------------------------------------------------------------------------------------------
// Nested JSON
// ---------------------------------------------------------------------------------------------

/**
 * The JSON body: `{"inputs":` + n `[` + n `]` + `}`. At n = 8 Mi − 6 it is one byte
 * under 16 MiB, the default JSON_BODY_MAX_BYTES, so the server must parse it rather than refuse
 * its size.
 */
export function nestedJsonBomb(n: number): Buffer {
  const head = Buffer.from('{"inputs":');
  const body = Buffer.alloc(head.length + 2 * n + 1);
  head.copy(body);
  body.fill('[', head.length, head.length + n);
  body.fill(']', head.length + n, head.length + 2 * n);
  body.write('}', head.length + 2 * n);
  return body;
}
