/**
 * The last step, on the main thread for every image: 8-bit RGB pixels to the model's
 * normalized float32 layout. Every output value depends on one byte and its channel, so the
 * arithmetic is done once per spec into three 256-entry tables and the loop only looks up and
 * stores (about 0.1 ms for 224×224).
 *
 * The tables reproduce torchvision's float32 arithmetic exactly: ToTensor's `x.float().div(255)`
 * then Normalize's `sub_(mean).div_(std)`, each rounded to float32 (Math.fround of the double
 * result of one operation on float32 operands is the correctly rounded float32 result). So the
 * tensor equals torchvision's wherever the 8-bit pixels are equal.
 */
import type { PreprocessSpec } from './spec.js';

/**
 * Writes the tensor of `rgb` into `into` when given (exactly `3 × crop × crop` elements), else
 * into a new Float32Array, and returns it.
 */
export type TensorWriter = (rgb: Uint8Array, into?: Float32Array) => Float32Array;

/** `table[c][v]` is the normalized value of byte `v` in model channel `c`. */
export function normalizationTables(spec: Pick<PreprocessSpec, 'mean' | 'std' | 'scale'>): [Float32Array, Float32Array, Float32Array] {
  const f = Math.fround;
  const scale = f(spec.scale);
  const table = (c: 0 | 1 | 2): Float32Array => {
    const mean = f(spec.mean[c]);
    const std = f(spec.std[c]);
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) t[v] = f(f(f(v / scale) - mean) / std);
    return t;
  };
  return [table(0), table(1), table(2)];
}

/**
 * Returns a function that turns `crop × crop` pixels of packed 8-bit RGB (HWC) into
 * `3 × crop × crop` float32 values in `spec.layout` and `spec.channels` order.
 *
 * A new 602 kB array (at 224²) costs more than the loop that fills it: its first touch
 * page-faults every 4 kB page (measured: 147 faults and 1.0–3.0 ms of CPU on a shared 2-core
 * VM, against 0.09–0.38 ms for the loop into reused memory), hence `into` for callers that
 * recycle buffers.
 */
export function createTensorWriter(spec: PreprocessSpec): TensorWriter {
  const pixels = spec.crop * spec.crop;
  const [t0, t1, t2] = normalizationTables(spec);
  // Source byte (within an RGB pixel) of each model channel.
  const [s0, s1, s2] = spec.channels === 'RGB' ? [0, 1, 2] : [2, 1, 0];
  const target = (rgb: Uint8Array, into: Float32Array | undefined): Float32Array => {
    if (rgb.length !== pixels * 3) throw new RangeError(`Expected ${pixels * 3} RGB bytes, got ${rgb.length}`);
    if (into === undefined) return new Float32Array(pixels * 3);
    if (into.length !== pixels * 3) throw new RangeError(`Expected a Float32Array of ${pixels * 3} elements to write into, got ${into.length}`);
    return into;
  };
  if (spec.layout === 'NCHW') {
    return (rgb, into) => {
      const out = target(rgb, into);
      for (let i = 0, p = 0; i < pixels; i++, p += 3) {
        out[i] = t0[rgb[p + s0] as number] as number;
        out[pixels + i] = t1[rgb[p + s1] as number] as number;
        out[2 * pixels + i] = t2[rgb[p + s2] as number] as number;
      }
      return out;
    };
  }
  return (rgb, into) => {
    const out = target(rgb, into);
    for (let p = 0; p < pixels * 3; p += 3) {
      out[p] = t0[rgb[p + s0] as number] as number;
      out[p + 1] = t1[rgb[p + s1] as number] as number;
      out[p + 2] = t2[rgb[p + s2] as number] as number;
    }
    return out;
  };
}
