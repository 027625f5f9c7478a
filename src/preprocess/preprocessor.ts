/**
 * Image bytes to a model's input tensor, reproducing what a torchvision user feeds their model:
 *
 *   ImageOps.exif_transpose(Image.open(f)).convert('RGB')
 *     -> Resize(resize) -> CenterCrop(crop) -> ToTensor() -> Normalize(mean, std)
 *
 * Order of checks, cheapest first, so hostile input costs little: empty → 400; magic numbers
 * not an accepted format → 415 (SVG, PDF and the rest never reach libvips); a JPEG's markers,
 * walked without decoding: over MAX_JPEG_SCANS scans, or a one-scan JPEG with an error after
 * its image data (jpeg-tail.ts) → 400; header unreadable → 400; header's width × height over
 * the limit → 413, before any pixel is decoded; a GIF whose first frame's data ends before its
 * last pixel → 400; then the decode, where truncated or corrupt data → 400 (sharp-pipeline.ts
 * says which damage libvips refuses).
 *
 * Colour, as Pillow's convert('RGB') does it: greyscale is replicated, palettes expanded,
 * alpha dropped (not blended: the colour stored under a transparent pixel is kept; for GIF,
 * whose decoder does not keep it, the palette colour of the transparent index), CMYK
 * converted naively without colour management, embedded ICC profiles ignored, 16-bit samples
 * reduced to their high byte. One deliberate difference: Pillow clips 16-bit greyscale to
 * white above 255 (it opens it as 32-bit integers), which destroys the image; here it keeps
 * the high byte like every other 16-bit input.
 */
import { errors } from '../errors.js';
import { estimateDecodeBytes, type DecodeBudget, type DecodeWait } from './decode-budget.js';
import { createTensorDecode } from './decode-to-tensor.js';
import type { DecodeThreads } from './decode-threads.js';
import { countGifFirstFrame } from './gif-frame.js';
import { ACCEPTED_FORMATS_TEXT, describeRefusedContent, detectImageFormat, type ImageFormat } from './image-format.js';
import { inspectJpegScans, MAX_JPEG_SCANS, type JpegFrame } from './jpeg-scans.js';
import { findJpegTailError } from './jpeg-tail.js';
import { createSharpDecoder, type ImageDecoder } from './sharp-pipeline.js';
import { validateImageLimits, validatePreprocessSpec, type ImageLimits, type PreprocessSpec } from './spec.js';
import { mainThreadTurns } from './turns.js';

export interface PreprocessedImage {
  /** `3 × crop × crop` values, laid out as `spec.layout` without the batch dimension (CHW or HWC). */
  readonly data: Float32Array;
  /** The format the bytes were decoded as, from their magic numbers. */
  readonly format: ImageFormat;
  /** Size of the source image as displayed (EXIF orientation applied; first frame). */
  readonly width: number;
  readonly height: number;
}

export interface ImagePreprocessor {
  readonly spec: PreprocessSpec;
  /**
   * Decodes and preprocesses one image. Rejects with a catalog error for the image:
   * INVALID_IMAGE (400), IMAGE_TOO_LARGE (413) or UNSUPPORTED_MEDIA_TYPE (415).
   *
   * @param into where to write the tensor: exactly `3 × crop × crop` elements, e.g. a slot of
   *   a recycled batch buffer; a wrong length is a programming error (RangeError). By default
   *   a new Float32Array that owns its whole ArrayBuffer, so it can be transferred to a worker.
   *   Fresh memory costs page faults on first touch, more than the normalization itself (see
   *   tensor.ts), so a server that recycles buffers should pass them here.
   * @param wait when to give up waiting for decoding memory (see decode-budget.ts): rejects
   *   with DEADLINE_EXCEEDED or CANCELLED, having decoded nothing.
   * @param handOver the caller will not read `bytes` again, so a preprocessing thread may take
   *   their buffer instead of a copy (decode-threads.ts): they may be empty once this returns.
   */
  preprocess(bytes: Uint8Array, into?: Float32Array, wait?: DecodeWait, handOver?: boolean): Promise<PreprocessedImage>;
}

export interface PreprocessorOptions {
  /** Memory every decode reserves before it starts, shared by the process's preprocessors. */
  readonly decodeBudget?: DecodeBudget;
  /**
   * Preprocessing threads, shared by the process's preprocessors: images of at least
   * OFF_THREAD_MIN_PIXELS are decoded there (decode-threads.ts), by the threads' own sharp
   * decoder, not the one `createImagePreprocessorWith` was given. Without them, on the main thread.
   */
  readonly threads?: DecodeThreads;
}

/**
 * Images of at least this many pixels (a megapixel) are decoded in a preprocessing thread when
 * there is one. Below it the main thread's share is a fraction of a millisecond, less than the
 * messages to and from a thread cost it; above it (phone photos: 2–12 MP) it is milliseconds
 * of filter and tensor, and megabytes of pixels for the main thread's garbage collector.
 */
export const OFF_THREAD_MIN_PIXELS = 1 << 20;

const FORMAT_NAMES: Readonly<Record<ImageFormat, string>> = {
  jpeg: 'JPEG',
  png: 'PNG',
  webp: 'WebP',
  gif: 'GIF',
  tiff: 'TIFF',
  avif: 'AVIF',
  heif: 'HEIF',
};

/** What libvips must report for bytes whose magic numbers say each format. */
const LIBVIPS_FORMAT: Readonly<Record<ImageFormat, string>> = {
  jpeg: 'jpeg',
  png: 'png',
  webp: 'webp',
  gif: 'gif',
  tiff: 'tiff',
  avif: 'heif',
  heif: 'heif',
};

/** Like `createImagePreprocessor`, with the decoder given (tests wrap it to watch its calls). */
export function createImagePreprocessorWith(
  spec: PreprocessSpec,
  limits: ImageLimits,
  decoder: ImageDecoder,
  options: PreprocessorOptions = {},
): ImagePreprocessor {
  const { decodeBudget, threads } = options;
  const checkedSpec = validatePreprocessSpec(spec);
  const { maxPixels } = validateImageLimits(limits);
  const decodeOnMainThread = createTensorDecode(checkedSpec, maxPixels, decoder, mainThreadTurns);

  async function preprocess(bytes: Uint8Array, into?: Float32Array, wait?: DecodeWait, handOver = false): Promise<PreprocessedImage> {
    const length = 3 * checkedSpec.crop * checkedSpec.crop;
    if (into !== undefined && into.length !== length) {
      throw new RangeError(`Expected a Float32Array of ${length} elements to write into, got ${into.length}`);
    }
    if (bytes.length === 0) throw errors.INVALID_IMAGE('The image is empty');
    const format = detectImageFormat(bytes);
    if (format === undefined) {
      const what = describeRefusedContent(bytes);
      throw errors.UNSUPPORTED_MEDIA_TYPE(
        `${what === undefined ? 'The content is not an image format this server accepts' : `${what} is not accepted`}; send ${ACCEPTED_FORMATS_TEXT}`,
      );
    }
    const name = FORMAT_NAMES[format];
    // Each scan of a progressive JPEG costs a pass over the whole image, and no libvips option
    // caps them (jpeg-scans.ts): count them before the decoder sees any.
    let jpegFrame: JpegFrame | undefined;
    if (format === 'jpeg') {
      const scans = inspectJpegScans(bytes, { maxScans: MAX_JPEG_SCANS });
      if (scans.exceedsMaxScans) throw errors.INVALID_IMAGE(`The JPEG image has more than ${MAX_JPEG_SCANS} scans; at most ${MAX_JPEG_SCANS} are accepted`);
      if (scans.scans > 1 || scans.progressive) jpegFrame = scans.frame;
      // libvips stops reading a one-scan JPEG at its last row; Pillow reads on (jpeg-tail.ts).
      const tail = findJpegTailError(bytes, scans);
      if (tail !== undefined) throw errors.INVALID_IMAGE(`The JPEG image is corrupt: after its image data comes ${tail}`);
    }
    const header = await decoder.readHeader(bytes, name);
    if (header.format !== LIBVIPS_FORMAT[format]) {
      throw errors.UNSUPPORTED_MEDIA_TYPE(`The content starts like ${name} but is not a ${name} image; send ${ACCEPTED_FORMATS_TEXT}`);
    }
    if (header.format === 'heif' && header.compression !== 'av1') {
      // sharp's libheif is built without an HEVC decoder, so HEIC photos cannot be decoded.
      throw errors.UNSUPPORTED_MEDIA_TYPE(
        `${name} images coded with ${header.compression ?? 'an unknown codec'} are not supported; send ${ACCEPTED_FORMATS_TEXT}`,
      );
    }
    const pixels = header.width * header.height;
    if (pixels > maxPixels) {
      throw errors.IMAGE_TOO_LARGE(`The image is ${header.width}×${header.height} (${pixels} pixels); at most ${maxPixels} pixels are accepted`);
    }
    if (format === 'gif') {
      // libnsgif leaves the pixels of a short frame transparent where Pillow refuses (gif-frame.ts).
      const frame = await countGifFirstFrame(bytes, mainThreadTurns);
      if (frame !== undefined && frame.coded < frame.declared) {
        throw errors.INVALID_IMAGE(`The GIF image is truncated: its first frame codes ${frame.coded} of its ${frame.declared} pixels`);
      }
    }

    const release =
      decodeBudget === undefined ? undefined : await decodeBudget.reserve(estimateDecodeBytes({ ...header, ...(jpegFrame ? { jpegFrame } : {}) }), wait);
    try {
      const image = { bytes, format, name, header };
      // A large image's synchronous share (the filter after shrink-on-load, 2–8 ms at 12 MP, the
      // tensor, and the garbage of its pixels) is spared the event loop when there are threads.
      const data =
        threads !== undefined && pixels >= OFF_THREAD_MIN_PIXELS
          ? await threads.decode(checkedSpec, maxPixels, image, into, handOver)
          : await decodeOnMainThread(image, into);
      return { data, format, width: header.width, height: header.height };
    } finally {
      release?.();
    }
  }

  return { spec: checkedSpec, preprocess };
}

/**
 * Builds a preprocessor for one model. Throws a RangeError naming the field when `spec` or
 * `limits` is invalid, so a bad model config stops startup.
 */
export function createImagePreprocessor(spec: PreprocessSpec, limits: ImageLimits, options: PreprocessorOptions = {}): ImagePreprocessor {
  return createImagePreprocessorWith(spec, limits, createSharpDecoder(), options);
}
