import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planBilinearWindow } from '../../../src/preprocess/pil-resample.js';
import { createTurnQueue } from '../../../src/preprocess/turns.js';

// Expected values from Pillow 9.4: Image.frombytes('RGB', (4, 3), SRC).resize(size, Image.BILINEAR).
const SRC = Uint8Array.from([
  7, 60, 113, 166, 219, 16, 69, 122, 175, 228, 25, 78, 131, 184, 237, 34, 87, 140, 193, 246, 43, 96, 149, 202, 255, 52, 105, 158, 211, 8, 61, 114, 167, 220, 17,
  70,
]);
const PIL_9x7 = [
  7, 60, 113, 34, 87, 97, 104, 157, 54, 161, 214, 25, 118, 171, 96, 74, 127, 166, 131, 84, 137, 201, 41, 94, 228, 25, 78, 25, 78, 131, 46, 99, 115, 99, 152, 72,
  144, 197, 41, 117, 170, 95, 90, 143, 149, 134, 102, 132, 188, 59, 106, 209, 43, 96, 78, 131, 184, 80, 133, 168, 86, 139, 125, 94, 147, 88, 116, 169, 94, 137,
  190, 99, 145, 155, 119, 150, 112, 140, 153, 96, 149, 131, 184, 237, 115, 168, 221, 72, 125, 178, 43, 96, 135, 114, 167, 92, 184, 237, 48, 155, 208, 105, 112,
  165, 175, 96, 149, 202, 184, 127, 180, 168, 130, 164, 125, 135, 121, 90, 143, 84, 112, 165, 90, 133, 186, 95, 141, 151, 115, 147, 108, 137, 149, 92, 145, 237,
  71, 124, 221, 92, 108, 178, 146, 65, 137, 190, 34, 111, 164, 89, 83, 136, 142, 128, 95, 126, 181, 52, 99, 202, 36, 89, 255, 52, 105, 239, 79, 89, 196, 149,
  46, 153, 206, 17, 110, 163, 88, 66, 119, 158, 123, 76, 129, 193, 33, 86, 220, 17, 70,
];
const PIL_3x2 = [73, 126, 131, 117, 170, 95, 159, 101, 125, 180, 121, 126, 112, 165, 90, 154, 96, 120];
const from = { width: 4, height: 3 };

function cut(pixels: Uint8Array, width: number, left: number, top: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) out.set(pixels.subarray(((top + y) * width + left) * 3, ((top + y) * width + left + w) * 3), y * w * 3);
  return out;
}

describe("Pillow's bilinear resample", () => {
  it('enlarges bit for bit like Pillow', () => {
    const plan = planBilinearWindow(from, { width: 9, height: 7 }, { left: 0, top: 0, width: 9, height: 7 });
    assert.deepEqual(plan.source, { left: 0, top: 0, width: 4, height: 3 });
    assert.deepEqual([...plan.run(SRC)], PIL_9x7);
  });

  it('reduces bit for bit like Pillow', () => {
    const plan = planBilinearWindow(from, { width: 3, height: 2 }, { left: 0, top: 0, width: 3, height: 2 });
    assert.deepEqual([...plan.run(SRC)], PIL_3x2);
  });

  it('computes a window from only the source pixels it needs, equal to the same window of the whole', () => {
    const window = { left: 5, top: 4, width: 3, height: 2 };
    const plan = planBilinearWindow(from, { width: 9, height: 7 }, window);
    const { source } = plan;
    assert.ok(source.width < 4 || source.height < 3, 'reads less than the whole image');
    const got = plan.run(cut(SRC, 4, source.left, source.top, source.width, source.height));
    assert.deepEqual([...got], [...cut(Uint8Array.from(PIL_9x7), 9, window.left, window.top, window.width, window.height)]);
  });

  it('copies when the size does not change', () => {
    const plan = planBilinearWindow(from, from, { left: 1, top: 1, width: 2, height: 2 });
    assert.deepEqual(plan.source, { left: 1, top: 1, width: 2, height: 2 });
    const window = cut(SRC, 4, 1, 1, 2, 2);
    assert.deepEqual([...plan.run(window)], [...window]);
  });

  it('gives the same bytes in turns as in one piece, yielding between pieces of a large reduction', async () => {
    // A 1200×900 photo-like source (a smooth pattern with noise) reduced 4.7× to 256×192, cropped to 224×160.
    const big = { width: 1200, height: 900 };
    const pixels = new Uint8Array(big.width * big.height * 3);
    let seed = 1;
    for (let i = 0; i < pixels.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      pixels[i] = (Math.floor(i / 3) % 251) ^ (seed >>> 28);
    }
    const window = { left: 16, top: 16, width: 224, height: 160 };
    const cases = [
      { to: { width: 256, height: 192 }, manyTurns: true },
      { to: { width: 256, height: 900 }, manyTurns: true },
      { to: { width: 2400, height: 1800 }, manyTurns: false },
    ];
    for (const { to, manyTurns } of cases) {
      const plan = planBilinearWindow(big, to, window);
      const { source } = plan;
      const region = cut(pixels, big.width, source.left, source.top, source.width, source.height);
      let turns = 0;
      const queue = { next: () => (turns++, Promise.resolve()) };
      const inTurns = await plan.runInTurns(region, queue);
      assert.deepEqual(inTurns, plan.run(region), `${to.width}×${to.height}`);
      // Pieces of at most PIECE_MULTIPLY_ADDS: several for a reduction, one turn awaited before each but the first.
      if (manyTurns) assert.ok(turns >= 3, `${to.width}×${to.height}: ${turns} turns`);
    }
  });

  it('runs in turns alongside another run without mixing their rows', async () => {
    const big = { width: 800, height: 600 };
    const a = new Uint8Array(big.width * big.height * 3).map((_, i) => i % 253);
    const b = new Uint8Array(big.width * big.height * 3).map((_, i) => (i * 7) % 241);
    const plan = planBilinearWindow(big, { width: 200, height: 150 }, { left: 0, top: 0, width: 200, height: 150 });
    // A real turn queue interleaves the two runs' pieces.
    const queue = createTurnQueue();
    const [ra, rb] = await Promise.all([plan.runInTurns(a, queue), plan.runInTurns(b, queue)]);
    assert.deepEqual(ra, plan.run(a));
    assert.deepEqual(rb, plan.run(b));
  });
});
