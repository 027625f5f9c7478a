/**
 * Image files made unique without changing a pixel: the same picture under bytes no other
 * request sends, so a response cache keyed by the bytes' SHA-256 misses on it and nothing can
 * coalesce it with another request, while decoding and inference cost what the original costs.
 * A JPEG gets a comment segment (COM) right after its SOI marker, a PNG a `tEXt` chunk right
 * after IHDR, a WebP an unknown RIFF chunk at its end (the RIFF size grown to match); decoders
 * skip all three.
 */
import { pngChunk, PNG_SIGNATURE } from './png.js';

/** PNG's IHDR chunk is always first: length (4), type (4), 13 bytes of data, CRC (4). */
const PNG_AFTER_IHDR = PNG_SIGNATURE.length + 4 + 4 + 13 + 4;

function isJpeg(image: Buffer): boolean {
  return image.length > 4 && image[0] === 0xff && image[1] === 0xd8;
}

function isPng(image: Buffer): boolean {
  return image.length > PNG_AFTER_IHDR && image.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE);
}

function isWebp(image: Buffer): boolean {
  return (
    image.length > 20 && image.toString('latin1', 0, 4) === 'RIFF' && image.toString('latin1', 8, 12) === 'WEBP' && image.readUInt32LE(4) === image.length - 8
  );
}

/** Whether `image` is a JPEG, PNG or WebP that `withUniqueTag` can tag. */
export function canMakeUnique(image: Uint8Array): boolean {
  const bytes = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  return isJpeg(bytes) || isPng(bytes) || isWebp(bytes);
}

/**
 * `image` (a JPEG, PNG or WebP) with `tag` written into it as a comment: different bytes for every
 * different `tag`, the same pixels. Throws a RangeError for any other format.
 */
export function withUniqueTag(image: Uint8Array, tag: string): Buffer {
  const source = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const text = Buffer.from(tag, 'latin1');
  if (isJpeg(source)) {
    if (text.length > 65_533) throw new RangeError(`A JPEG comment holds at most 65533 bytes, got ${text.length}`);
    const segment = Buffer.alloc(4 + text.length);
    segment.writeUInt16BE(0xfffe, 0);
    segment.writeUInt16BE(2 + text.length, 2);
    text.copy(segment, 4);
    return Buffer.concat([source.subarray(0, 2), segment, source.subarray(2)]);
  }
  if (isPng(source)) {
    const chunk = pngChunk('tEXt', Buffer.concat([Buffer.from('Comment\0', 'latin1'), text]));
    return Buffer.concat([source.subarray(0, PNG_AFTER_IHDR), chunk, source.subarray(PNG_AFTER_IHDR)]);
  }
  if (isWebp(source)) {
    const head = Buffer.alloc(8);
    head.write('UNIQ', 0, 'latin1');
    head.writeUInt32LE(text.length, 4);
    // RIFF chunks are padded to an even length.
    const tagged = Buffer.concat([source, head, text, Buffer.alloc(text.length & 1)]);
    tagged.writeUInt32LE(tagged.length - 8, 4);
    return tagged;
  }
  throw new RangeError('Only JPEG, PNG and WebP images can be tagged');
}
