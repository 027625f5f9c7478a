import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { countGifFirstFrame } from '../../../src/preprocess/gif-frame.js';
import { createTurnQueue, type TurnQueue } from '../../../src/preprocess/turns.js';
import { FIXTURES } from '../../helpers.js';
import { fixtureInput } from './support.js';

const turns = createTurnQueue();
const corpus = (file: string) => new Uint8Array(readFileSync(join(FIXTURES, 'decode-verdicts', 'files', file)));

/**
 * A GIF of one `width × height` frame (2 colours, LZW minimum code size 2) whose data codes
 * `coded` pixels as literals, then the end code. A clear code after every second literal keeps
 * the codes 3 bits wide.
 */
function gif(width: number, height: number, coded: number): Uint8Array {
  const codes = [4];
  for (let i = 0; i < coded; i++) {
    codes.push(i % 2);
    if (i % 2 === 1) codes.push(4);
  }
  codes.push(5);
  const data: number[] = [];
  let bits = 0;
  let count = 0;
  for (const code of codes) {
    bits |= code << count;
    count += 3;
    while (count >= 8) {
      data.push(bits & 0xff);
      bits >>>= 8;
      count -= 8;
    }
  }
  if (count > 0) data.push(bits & 0xff);
  const blocks: number[] = [];
  for (let i = 0; i < data.length; i += 255) {
    const piece = data.slice(i, i + 255);
    blocks.push(piece.length, ...piece);
  }
  const le = (n: number) => [n & 0xff, n >> 8];
  return Uint8Array.from([
    ...Buffer.from('GIF89a'),
    ...le(width),
    ...le(height),
    0x80,
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    255,
    0x2c,
    0,
    0,
    0,
    0,
    ...le(width),
    ...le(height),
    0,
    2,
    ...blocks,
    0,
    0x3b,
  ]);
}

describe('countGifFirstFrame', () => {
  it('counts every pixel of whole frames, real and made here', async () => {
    assert.deepEqual(await countGifFirstFrame(corpus('gif.intact.gif'), turns), { declared: 48 * 48, coded: 48 * 48 });
    assert.deepEqual(await countGifFirstFrame(fixtureInput('animated.gif'), turns), { declared: 30000, coded: 30000 });
    assert.deepEqual(await countGifFirstFrame(fixtureInput('transparent.gif'), turns), { declared: 30000, coded: 30000 });
    assert.deepEqual(await countGifFirstFrame(gif(7, 3, 21), turns), { declared: 21, coded: 21 });
    // Data beyond the frame's last pixel is ignored, as Pillow and libnsgif ignore it.
    assert.deepEqual(await countGifFirstFrame(gif(7, 3, 30), turns), { declared: 21, coded: 21 });
  });

  it('finds frames whose data ends early: an early end code, or a descriptor wider than the data', async () => {
    assert.deepEqual(await countGifFirstFrame(gif(7, 3, 20), turns), { declared: 21, coded: 20 });
    // The corpus file Pillow refuses as truncated: the high byte of its frame's width flipped
    // (48 → 65,328), wider than its 48 × 48 screen.
    assert.deepEqual(await countGifFirstFrame(corpus('gif.flip-image-width.gif'), turns), { declared: 65_328 * 48, coded: 48 * 48 });
  });

  it('leaves to the decoder what it cannot walk to', async () => {
    assert.equal(await countGifFirstFrame(new Uint8Array(5), turns), undefined);
    assert.equal(await countGifFirstFrame(corpus('gif.flip-lzw-code-size.gif'), turns), undefined);
    assert.equal(await countGifFirstFrame(corpus('gif.flip-image-descriptor.gif'), turns), undefined);
  });

  it('takes turns of the event loop through a long frame, and none through a short one', async () => {
    let waits = 0;
    const counting: TurnQueue = { next: () => (waits++, turns.next()) };
    assert.deepEqual(await countGifFirstFrame(gif(400, 500, 200_000), counting), { declared: 200_000, coded: 200_000 });
    // 300,001 codes: a literal per pixel and a clear code after every second one.
    assert.equal(waits, Math.floor(300_001 / 65_536));
    waits = 0;
    await countGifFirstFrame(gif(7, 3, 21), counting);
    assert.equal(waits, 0);
  });
});
