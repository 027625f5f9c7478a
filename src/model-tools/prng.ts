/**
 * A small seeded pseudo-random generator, so a build is reproducible byte for byte: xoshiro128**
 * (Blackman and Vigna) on 32-bit integer arithmetic, seeded through splitmix32, with normals
 * from Marsaglia's polar method. Integer steps are exact in every JavaScript engine;
 * `Math.log` is V8's fdlibm port and `Math.sqrt` is correctly rounded, so the same seed gives
 * the same bits on every platform Node runs on.
 */

export interface Random {
  /** Uniform in [0, 1), 32 bits of resolution. */
  uniform(): number;
  /** Fills `out` with normals of mean 0 and standard deviation `std`. */
  fillNormal(out: Float32Array, std: number): Float32Array;
  /** Fills `out` with uniforms in [low, high). */
  fillUniform(out: Float32Array, low: number, high: number): Float32Array;
}

/** Largest accepted seed: seeds are unsigned 32-bit integers. */
export const MAX_SEED = 0xffffffff;

function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Creates a generator; the same `seed` always yields the same sequence. */
export function createRandom(seed: number): Random {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new RangeError(`Expected \`seed\` to be an integer from 0 to ${MAX_SEED}, got \`${seed}\``);
  }
  const init = splitmix32(seed);
  // xoshiro128** state; it must not be all zero.
  const state = new Int32Array([init(), init(), init(), init()]);
  if ((state[0]! | state[1]! | state[2]! | state[3]!) === 0) state[0] = 1;

  // The generator is written out in full (not a per-number closure) because the ResNet-50
  // build draws 25 million normals and the call overhead would double its time.
  function fillNormal(out: Float32Array, std: number): Float32Array {
    let s0 = state[0]!;
    let s1 = state[1]!;
    let s2 = state[2]!;
    let s3 = state[3]!;
    let i = 0;
    while (i < out.length) {
      let u: number;
      let v: number;
      let s: number;
      do {
        let r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
        let t = s1 << 9;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 11);
        u = r / 0x80000000 - 1;
        r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
        t = s1 << 9;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 11);
        v = r / 0x80000000 - 1;
        s = u * u + v * v;
      } while (s >= 1 || s === 0);
      const scale = Math.sqrt((-2 * Math.log(s)) / s) * std;
      out[i++] = u * scale;
      if (i < out.length) out[i++] = v * scale;
    }
    state[0] = s0;
    state[1] = s1;
    state[2] = s2;
    state[3] = s3;
    return out;
  }

  function next(): number {
    const s0 = state[0]!;
    let s1 = state[1]!;
    let s2 = state[2]!;
    let s3 = state[3]!;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    state[0] = s0 ^ s3;
    state[1] = s1;
    state[2] = s2 ^ t;
    state[3] = rotl(s3, 11);
    return result;
  }

  const uniform = (): number => next() / 0x100000000;
  return {
    uniform,
    fillNormal,
    fillUniform(out, low, high) {
      const span = high - low;
      for (let i = 0; i < out.length; i++) out[i] = low + uniform() * span;
      return out;
    },
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
