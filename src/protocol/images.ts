/**
 * Images as every protocol receives them: base64 text decoded strictly and within the byte
 * limits, and the per-request image count checked in one place.
 */
import { errors, isServingError } from '../errors.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * Strictly decodes standard or URL-safe base64 (whitespace ignored); refuses anything else.
 * @param maxBytes most bytes the decoded value may hold; larger is refused before decoding.
 */
export function decodeBase64(text: unknown, what: string, maxBytes: number): Buffer {
  if (typeof text !== 'string') throw errors.INVALID_BASE64(`${what} must be a base64 string`);
  const s = text.replace(/\s+/g, '');
  if (s.length === 0) throw errors.INVALID_BASE64(`${what} is empty`);
  // Decoded size is known before decoding: refuse oversize input without allocating it.
  if (Math.floor((s.length * 3) / 4) > maxBytes + 2) throw errors.PAYLOAD_TOO_LARGE(`${what} decodes to more than ${maxBytes} bytes`);
  const url = /[-_]/.test(s);
  if (!(url ? BASE64URL : BASE64).test(s) || s.length % 4 === 1) throw errors.INVALID_BASE64(`${what} is not valid base64`);
  const bytes = Buffer.from(s, url ? 'base64url' : 'base64');
  if (bytes.length > maxBytes) throw errors.PAYLOAD_TOO_LARGE(`${what} decodes to more than ${maxBytes} bytes`);
  return bytes;
}

/**
 * Decodes base64 images in order, holding their total to `uploadMaxBytes` as multipart and
 * raw uploads are held: each is checked against what is left before it is decoded.
 */
export function decodeBase64Images(values: readonly unknown[], what: (index: number) => string, limits: { readonly uploadMaxBytes: number }): Buffer[] {
  let left = limits.uploadMaxBytes;
  return values.map((value, i) => {
    try {
      const bytes = decodeBase64(value, what(i), left);
      left -= bytes.length;
      return bytes;
    } catch (err) {
      if (i > 0 && isServingError(err) && err.code === errors.PAYLOAD_TOO_LARGE.code) {
        throw errors.PAYLOAD_TOO_LARGE(`The images exceed ${limits.uploadMaxBytes} bytes in all (at ${what(i)})`);
      }
      throw err;
    }
  });
}

/**
 * The one check of `MAX_IMAGES_PER_REQUEST`, for every protocol: `count` images (or tensor
 * items) in one request.
 */
export function checkImageCount(count: number, max: number, noun = 'images'): void {
  if (count > max) throw errors.TOO_MANY_IMAGES(`A request may carry at most ${max} ${noun}, got ${count}`);
}
