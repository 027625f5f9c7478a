/**
 * Pillow's 8-bit bilinear resampling (Pillow 9.4, libImaging/Resample.c), computed only for a
 * window of the output. Used when an image is enlarged: libvips samples enlarged images half
 * an output pixel away from where Pillow does (a visible shift at 8×), while this reproduces
 * Pillow bit for bit: the same double-precision coefficients, the same 22-bit fixed point, a
 * horizontal pass rounded to 8 bits, then a vertical pass. Also for the rest of a reduction
 * after shrink-on-load (shrink-on-load.ts), where libvips' resize strays further from Pillow's.
 *
 * Runs on the main thread. Enlarging reads at most about crop² source pixels and does at most
 * 3 multiply-adds per byte and pass (measured 0.7–1.9 ms of CPU for a 224² crop on a loaded
 * 2-core machine where the tensor loop took 0.38 ms): `run`, in one piece. The rest of a
 * reduction reads the shrunk image's rows under the crop with wider kernels (2–5 ms for a 12 MP
 * photo's 224² crop): `runInTurns`, in pieces between turns of the event loop.
 */
import type { Region, Size } from './geometry.js';
import type { TurnQueue } from './turns.js';

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const CLIP_HIGH = 1 << (PRECISION_BITS + 8);

interface Coefficients {
  /** For output i: first source index and count of taps. */
  readonly first: Int32Array;
  readonly count: Int32Array;
  /** `ksize` fixed-point weights per output. */
  readonly weights: Int32Array;
  readonly ksize: number;
}

function bilinear(x: number): number {
  const a = x < 0 ? -x : x;
  return a < 1 ? 1 - a : 0;
}

/** precompute_coeffs + normalize_coeffs_8bpc for outputs [outStart, outStart + outCount). */
function coefficients(inSize: number, outSize: number, outStart: number, outCount: number): Coefficients {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filterscale; // bilinear's support is 1, scaled when reducing
  const ksize = Math.ceil(support) * 2 + 1;
  const ss = 1 / filterscale;
  const first = new Int32Array(outCount);
  const count = new Int32Array(outCount);
  const weights = new Int32Array(outCount * ksize);
  const k = new Float64Array(ksize);
  for (let i = 0; i < outCount; i++) {
    const center = (outStart + i + 0.5) * scale;
    // C's (int) cast truncates toward zero, as Math.trunc does.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bilinear((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    const row = i * ksize;
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? (k[x] as number) / ww : (k[x] as number);
      weights[row + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    // Taps whose fixed-point weight is zero (an enlarging bilinear kernel has one at an end of
    // most windows) add nothing: dropping them from the ends leaves every sum as Pillow's and
    // the loops shorter. At least one tap stays.
    let lo = 0;
    let hi = xmax;
    while (hi - lo > 1 && weights[row + hi - 1] === 0) hi--;
    while (hi - lo > 1 && weights[row + lo] === 0) lo++;
    if (lo > 0) weights.copyWithin(row, row + lo, row + hi);
    first[i] = xmin + lo;
    count[i] = hi - lo;
  }
  return { first, count, weights, ksize };
}

function clip8(v: number): number {
  if (v >= CLIP_HIGH) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

function span(c: Coefficients): { start: number; end: number } {
  let start = Infinity;
  let end = -Infinity;
  for (let i = 0; i < c.first.length; i++) {
    start = Math.min(start, c.first[i] as number);
    end = Math.max(end, (c.first[i] as number) + (c.count[i] as number));
  }
  return { start, end };
}

let scratch = new Uint8Array(0);
let accumulator = new Int32Array(0);

/**
 * Module-wide buffers for the horizontal pass and the vertical sums: run() is synchronous, so
 * they are never in use twice at once, and reusing them spares fresh memory's page faults.
 */
function scratchBytes(length: number): Uint8Array {
  if (scratch.length < length) scratch = new Uint8Array(length);
  return scratch;
}

function accumulatorInts(length: number): Int32Array {
  if (accumulator.length < length) accumulator = new Int32Array(length);
  return accumulator;
}

export interface BilinearWindow {
  /** The source pixels the window reads, in source coordinates. */
  readonly source: Region;
  /**
   * Resamples `pixels` (the `source` region as packed 8-bit RGB rows) into `into` (or a new
   * array) of `window.width × window.height × 3` bytes, and returns it.
   */
  run(pixels: Uint8Array, into?: Uint8Array): Uint8Array;
  /**
   * As `run`, the same bytes, in pieces of about PIECE_MULTIPLY_ADDS each, awaiting
   * `turns.next()` before every piece but the first: a reduction of a shrunk-on-load photo
   * costs milliseconds of the main thread (a 12 MP photo's 224² crop, 2–5 ms), which in one
   * piece would hold health probes and every other request for as long.
   */
  runInTurns(pixels: Uint8Array, turns: TurnQueue, into?: Uint8Array): Promise<Uint8Array>;
}

/**
 * Work between two turns of the event loop in runInTurns, in multiply-adds (about 0.3 ms
 * here: the horizontal pass runs at about 1 ns a multiply-add on this 2-core machine).
 */
export const PIECE_MULTIPLY_ADDS = 300_000;

/** Horizontal-pass buffers of runs in turns, which can overlap; a few are kept for the next. */
const spareRows: Uint8Array[] = [];
const MAX_SPARE_ROWS = 4;

function takeRows(length: number): Uint8Array {
  const i = spareRows.findIndex((b) => b.length >= length);
  return i >= 0 ? spareRows.splice(i, 1)[0]!.subarray(0, length) : new Uint8Array(length);
}

function giveRows(rows: Uint8Array): void {
  if (spareRows.length < MAX_SPARE_ROWS) spareRows.push(new Uint8Array(rows.buffer, rows.byteOffset, rows.buffer.byteLength - rows.byteOffset));
}

/**
 * Prepares the resampling of `window` (in output coordinates) when an RGB image of size `from`
 * is resized to `to`, and tells which source region it reads.
 */
export function planBilinearWindow(from: Size, to: Size, window: Region): BilinearWindow {
  const horizontal = to.width !== from.width;
  const vertical = to.height !== from.height;
  const h = coefficients(from.width, to.width, window.left, window.width);
  const v = coefficients(from.height, to.height, window.top, window.height);
  const cols = horizontal ? span(h) : { start: window.left, end: window.left + window.width };
  const rows = vertical ? span(v) : { start: window.top, end: window.top + window.height };
  const source: Region = { left: cols.start, top: rows.start, width: cols.end - cols.start, height: rows.end - rows.start };
  const rowBytes = window.width * 3;
  const stride = horizontal ? rowBytes : source.width * 3;
  const colOffset = horizontal ? 0 : (window.left - source.left) * 3;

  /** Source rows [y0, y1) through the horizontal filter into `tmp`. */
  function horizontalRows(pixels: Uint8Array, tmp: Uint8Array, y0: number, y1: number): void {
    const { first, count, weights, ksize } = h;
    for (let y = y0; y < y1; y++) {
      const rowIn = y * source.width * 3;
      let o = y * rowBytes;
      for (let x = 0; x < window.width; x++) {
        let p = rowIn + ((first[x] as number) - source.left) * 3;
        const n = count[x] as number;
        let k = x * ksize;
        let r = HALF;
        let g = HALF;
        let b = HALF;
        for (let t = 0; t < n; t++, p += 3, k++) {
          const w = weights[k] as number;
          r += (pixels[p] as number) * w;
          g += (pixels[p + 1] as number) * w;
          b += (pixels[p + 2] as number) * w;
        }
        tmp[o++] = clip8(r);
        tmp[o++] = clip8(g);
        tmp[o++] = clip8(b);
      }
    }
  }

  /** Output rows [y0, y1): the vertical filter over `tmp` (or, without one, a copy of its rows). */
  function outputRows(tmp: Uint8Array, out: Uint8Array, acc: Int32Array, y0: number, y1: number): void {
    if (!vertical) {
      for (let y = y0; y < y1; y++) {
        const start = (window.top - source.top + y) * stride + colOffset;
        out.set(tmp.subarray(start, start + rowBytes), y * rowBytes);
      }
      return;
    }
    const { first, count, weights, ksize } = v;
    // Weights are non-negative and sum to about 2^22, so each sum stays below 2^31 and is exact
    // in any order. Enlarging reads one or two source rows per output row (zero-weight taps
    // are dropped in coefficients()), so those cases sum straight into the output, without
    // the accumulator's extra passes: most of the cost of a small image.
    for (let y = y0; y < y1; y++) {
      const n = count[y] as number;
      const k = y * ksize;
      const row0 = ((first[y] as number) - source.top) * stride + colOffset;
      const o = y * rowBytes;
      if (n === 2) {
        const w0 = weights[k] as number;
        const w1 = weights[k + 1] as number;
        const row1 = row0 + stride;
        for (let i = 0; i < rowBytes; i++) out[o + i] = clip8(HALF + (tmp[row0 + i] as number) * w0 + (tmp[row1 + i] as number) * w1);
        continue;
      }
      if (n === 1) {
        const w0 = weights[k] as number;
        for (let i = 0; i < rowBytes; i++) out[o + i] = clip8(HALF + (tmp[row0 + i] as number) * w0);
        continue;
      }
      acc.fill(HALF, 0, rowBytes);
      for (let t = 0; t < n; t++) {
        const w = weights[k + t] as number;
        const base = row0 + t * stride;
        for (let i = 0; i < rowBytes; i++) acc[i] = (acc[i] as number) + (tmp[base + i] as number) * w;
      }
      for (let i = 0; i < rowBytes; i++) out[o + i] = clip8(acc[i] as number);
    }
  }

  function output(pixels: Uint8Array, into: Uint8Array | undefined): Uint8Array {
    if (pixels.length !== source.width * source.height * 3) {
      throw new RangeError(`Expected ${source.width}×${source.height}×3 source bytes, got ${pixels.length}`);
    }
    const outLength = rowBytes * window.height;
    if (into !== undefined && into.length !== outLength) throw new RangeError(`Expected ${outLength} output bytes, got ${into.length}`);
    return into ?? new Uint8Array(outLength);
  }

  function run(pixels: Uint8Array, into?: Uint8Array): Uint8Array {
    const out = output(pixels, into);
    // Pillow runs the horizontal pass over every source row the vertical pass reads.
    let tmp = pixels;
    if (horizontal) {
      tmp = scratchBytes(source.height * rowBytes);
      horizontalRows(pixels, tmp, 0, source.height);
    }
    outputRows(tmp, out, accumulatorInts(rowBytes), 0, window.height);
    return out;
  }

  async function runInTurns(pixels: Uint8Array, turns: TurnQueue, into?: Uint8Array): Promise<Uint8Array> {
    const out = output(pixels, into);
    let first = true;
    const piece = async () => {
      if (!first) await turns.next();
      first = false;
    };
    const tmp = horizontal ? takeRows(source.height * rowBytes) : pixels;
    try {
      if (horizontal) {
        const step = Math.max(1, Math.floor(PIECE_MULTIPLY_ADDS / (window.width * 3 * h.ksize)));
        for (let y = 0; y < source.height; y += step) {
          await piece();
          horizontalRows(pixels, tmp, y, Math.min(source.height, y + step));
        }
      }
      const acc = new Int32Array(rowBytes);
      const step = Math.max(1, Math.floor(PIECE_MULTIPLY_ADDS / (rowBytes * (vertical ? v.ksize : 1))));
      for (let y = 0; y < window.height; y += step) {
        await piece();
        outputRows(tmp, out, acc, y, Math.min(window.height, y + step));
      }
    } finally {
      if (horizontal) giveRows(tmp);
    }
    return out;
  }

  return { source, run, runInTurns };
}
