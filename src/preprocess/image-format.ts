/**
 * Which image format a byte string holds, judged from its magic numbers alone: a Content-Type
 * header or a file name is whatever the client says, the bytes are what a decoder would see.
 * Anything not recognised here is refused before it reaches libvips, so no vector renderer
 * (SVG, PDF) or other loader ever parses request data.
 */

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif' | 'heif';

/** Formats in the order a human would list them, for messages. */
export const ACCEPTED_FORMATS_TEXT = 'JPEG, PNG, WebP, GIF, TIFF or AVIF';

function startsWith(bytes: Uint8Array, offset: number, signature: readonly number[]): boolean {
  if (bytes.length < offset + signature.length) return false;
  for (let i = 0; i < signature.length; i++) if (bytes[offset + i] !== signature[i]) return false;
  return true;
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  let s = '';
  for (let i = offset; i < offset + length && i < bytes.length; i++) s += String.fromCharCode(bytes[i] as number);
  return s;
}

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG = [0xff, 0xd8, 0xff];
const TIFF_LE = [0x49, 0x49, 0x2a, 0x00];
const TIFF_BE = [0x4d, 0x4d, 0x00, 0x2a];
const BIGTIFF_LE = [0x49, 0x49, 0x2b, 0x00];
const BIGTIFF_BE = [0x4d, 0x4d, 0x00, 0x2b];

const AVIF_BRANDS = new Set(['avif', 'avis']);
// HEIF image brands (ISO/IEC 23008-12): HEVC-coded ones and the codec-neutral mif1/msf1.
const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'mif2', 'msf1']);

/** AVIF or HEIF from the ISO-BMFF `ftyp` box: its major brand and compatible brands. */
function isoBmffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length < 16 || ascii(bytes, 4, 4) !== 'ftyp') return undefined;
  const boxSize = (((bytes[0] as number) << 24) >>> 0) + ((bytes[1] as number) << 16) + ((bytes[2] as number) << 8) + (bytes[3] as number);
  if (boxSize < 16 || boxSize % 4 !== 0) return undefined;
  const brands = [ascii(bytes, 8, 4)];
  const end = Math.min(boxSize, bytes.length);
  for (let offset = 16; offset + 4 <= end; offset += 4) brands.push(ascii(bytes, offset, 4));
  if (brands.some((b) => AVIF_BRANDS.has(b))) return 'avif';
  if (brands.some((b) => HEIF_BRANDS.has(b))) return 'heif';
  return undefined;
}

/** The image format of `bytes` from its magic numbers, or `undefined` for anything else. */
export function detectImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (startsWith(bytes, 0, JPEG)) return 'jpeg';
  if (startsWith(bytes, 0, PNG)) return 'png';
  if (ascii(bytes, 0, 6) === 'GIF87a' || ascii(bytes, 0, 6) === 'GIF89a') return 'gif';
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return 'webp';
  if (startsWith(bytes, 0, TIFF_LE) || startsWith(bytes, 0, TIFF_BE) || startsWith(bytes, 0, BIGTIFF_LE) || startsWith(bytes, 0, BIGTIFF_BE)) {
    return 'tiff';
  }
  return isoBmffFormat(bytes);
}

/**
 * A human name for common content that is refused, to make the 415 message precise. Only for
 * the message: the decision to refuse is `detectImageFormat` returning `undefined`.
 */
export function describeRefusedContent(bytes: Uint8Array): string | undefined {
  const head = ascii(bytes, 0, 1024)
    .replace(/^\uFEFF|^\xEF\xBB\xBF/, '')
    .trimStart()
    .toLowerCase();
  if (head.startsWith('%pdf-') || ascii(bytes, 0, 1024).includes('%PDF-')) return 'PDF';
  if (head.includes('<svg')) return 'SVG';
  if (head.startsWith('<!doctype html') || head.startsWith('<html')) return 'HTML';
  if (head.startsWith('<?xml') || head.startsWith('<')) return 'XML';
  if (startsWith(bytes, 0, [0x42, 0x4d])) return 'BMP';
  if (startsWith(bytes, 0, [0xff, 0x0a]) || ascii(bytes, 4, 8) === 'JXL \r\n\x87\n') return 'JPEG XL';
  return undefined;
}
