/**
 * Whether a GIF's first frame is coded whole: Pillow refuses a frame whose LZW data ends
 * before its last pixel ("image file is truncated"), while libvips' GIF loader (libnsgif)
 * leaves the missing pixels transparent at every `failOn` level, so the model would classify
 * a frame that is partly blank. The stream ends early when it is cut inside the frame's
 * sub-blocks only if the cut also removes the block terminator, which libnsgif already
 * refuses; this check covers the rest: an early end-of-information code, or a frame
 * descriptor that claims more pixels than the data holds.
 *
 * Only the lengths of the dictionary's strings are tracked, not their contents, so counting
 * the pixels costs one small array and a pass over the codes; it stops as soon as the frame
 * is full. The pass runs on the main thread, at 15–25 ns a code: a 13 MB GIF of noise (10
 * million codes) took 150–270 ms in one piece. So it takes turns of the event loop (turns.ts)
 * every `CODES_PER_TURN` codes, 1–2 ms of work once optimised; counting that GIF, the longest
 * a timer then waited was 5–6 ms (18–24 ms in the first, unoptimised runs). A GIF of fewer
 * than 65,536 codes (a few hundred thousand pixels) never waits.
 */
import type { TurnQueue } from './turns.js';

const MAX_CODES = 4096;
const CODES_PER_TURN = 65_536;

function tableBytes(flags: number): number {
  return flags & 0x80 ? 3 * (1 << ((flags & 0x07) + 1)) : 0;
}

/** Offset of the first image descriptor, or `undefined` if the stream ends before one. */
function firstImageDescriptor(bytes: Uint8Array): number | undefined {
  let offset = 13 + tableBytes(bytes[10] as number);
  while (offset < bytes.length) {
    const introducer = bytes[offset];
    if (introducer === 0x2c) return offset;
    if (introducer !== 0x21) return undefined;
    offset += 2;
    while (offset < bytes.length && bytes[offset] !== 0) offset += 1 + (bytes[offset] as number);
    offset += 1;
  }
  return undefined;
}

export interface GifFrameCount {
  /** Pixels the first frame's descriptor declares: width × height. */
  readonly declared: number;
  /** Pixels its LZW data codes, counted up to `declared` at most. */
  readonly coded: number;
}

/**
 * Counts the pixels coded for the first frame. `undefined` when the stream cannot be walked
 * to that frame's data or its LZW minimum code size is invalid: the decoder refuses those
 * itself. A code that is not yet in the dictionary ends the count, as it ends Pillow's decode.
 */
export async function countGifFirstFrame(bytes: Uint8Array, turns: TurnQueue): Promise<GifFrameCount | undefined> {
  if (bytes.length < 13) return undefined;
  const descriptor = firstImageDescriptor(bytes);
  if (descriptor === undefined || descriptor + 11 > bytes.length) return undefined;
  const width = (bytes[descriptor + 5] as number) | ((bytes[descriptor + 6] as number) << 8);
  const height = (bytes[descriptor + 7] as number) | ((bytes[descriptor + 8] as number) << 8);
  const declared = width * height;
  const minCodeSize = bytes[descriptor + 10 + tableBytes(bytes[descriptor + 9] as number)];
  if (minCodeSize === undefined || minCodeSize < 2 || minCodeSize > 11 || declared === 0) return undefined;

  const clear = 1 << minCodeSize;
  const end = clear + 1;
  const lengths = new Uint16Array(MAX_CODES);
  lengths.fill(1, 0, clear);
  let codeSize = minCodeSize + 1;
  let next = clear + 2;
  let previous = -1;
  let coded = 0;

  let block = descriptor + 11 + tableBytes(bytes[descriptor + 9] as number);
  let blockEnd = block;
  let bits = 0;
  let bitCount = 0;
  let codesThisTurn = 0;
  for (;;) {
    if (++codesThisTurn === CODES_PER_TURN) {
      codesThisTurn = 0;
      await turns.next();
    }
    while (bitCount < codeSize) {
      if (block >= blockEnd) {
        // Next sub-block: a length byte, 0 for the terminator.
        const size = bytes[blockEnd];
        if (size === undefined || size === 0) return { declared, coded };
        block = blockEnd + 1;
        blockEnd = block + size;
        if (blockEnd > bytes.length) blockEnd = bytes.length;
        continue;
      }
      bits |= (bytes[block++] as number) << bitCount;
      bitCount += 8;
    }
    const code = bits & ((1 << codeSize) - 1);
    bits >>>= codeSize;
    bitCount -= codeSize;

    if (code === clear) {
      codeSize = minCodeSize + 1;
      next = clear + 2;
      previous = -1;
      continue;
    }
    if (code === end) return { declared, coded };
    let length: number;
    if (previous === -1) {
      if (code >= clear) return { declared, coded };
      length = 1;
    } else {
      if (code < next) length = lengths[code] as number;
      else if (code === next) length = (lengths[previous] as number) + 1;
      else return { declared, coded };
      // A full dictionary stays as it is until the next clear code (a deferred clear).
      if (next < MAX_CODES) {
        lengths[next] = (lengths[previous] as number) + 1;
        next++;
        if (next === 1 << codeSize && codeSize < 12) codeSize++;
      }
    }
    previous = code;
    coded += length;
    if (coded >= declared) return { declared, coded: declared };
  }
}
