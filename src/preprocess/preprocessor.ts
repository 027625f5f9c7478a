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
import { cmykToRgb } from './cmyk.js';
import { estimateDecodeBytes, type DecodeBudget, type DecodeWait } from './decode-budget.js';
import { planResize } from './geometry.js';
import { countGifFirstFrame } from './gif-frame.js';
import { gifTransparentColour } from './gif-transparency.js';
import { ACCEPTED_FORMATS_TEXT, describeRefusedContent, detectImageFormat, type ImageFormat } from './image-format.js';
import { inspectJpegScans, MAX_JPEG_SCANS, type JpegFrame } from './jpeg-scans.js';
import { findJpegTailError } from './jpeg-tail.js';
import { planBilinearWindow } from './pil-resample.js';
import { createSharpDecoder, type ImageDecoder, type ImageHeader } from './sharp-pipeline.js';
import { planShrinkOnLoad } from './shrink-on-load.js';
import { validateImageLimits, validatePreprocessSpec, type ImageLimits, type PreprocessSpec } from './spec.js';
import { createTensorWriter } from './tensor.js';
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
   */
  preprocess(bytes: Uint8Array, into?: Float32Array, wait?: DecodeWait): Promise<PreprocessedImage>;
}

export interface PreprocessorOptions {
  /** Memory every decode reserves before it starts, shared by the process's preprocessors. */
  readonly decodeBudget?: DecodeBudget;
}

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

/**
 * Formats libvips decodes at reduced scale: JPEG (DCT scaling) and WebP. HEIF's only reduced
 * form is an embedded thumbnail, other pixels than the image's, so it is never used. Alpha and
 * CMYK keep their own paths (sharp-pipeline.ts), which decode at full scale.
 */
function canShrinkOnLoad(format: ImageFormat, header: ImageHeader, colour: 'srgb' | 'cmyk', flatten: unknown): boolean {
  return (format === 'jpeg' || format === 'webp') && colour === 'srgb' && !header.hasAlpha && flatten === undefined;
}

/** Like `createImagePreprocessor`, with the decoder given (tests wrap it to watch its calls). */
export function createImagePreprocessorWith(
  spec: PreprocessSpec,
  limits: ImageLimits,
  decoder: ImageDecoder,
  options: PreprocessorOptions = {},
): ImagePreprocessor {
  const { decodeBudget } = options;
  const checkedSpec = validatePreprocessSpec(spec);
  const { maxPixels } = validateImageLimits(limits);
  const writeTensor = createTensorWriter(checkedSpec);
  // Pixels of an enlarged crop live only between window.run() and writeTensor(), with no await
  // between them, so one buffer serves every call and spares fresh memory's page faults.
  const enlarged = new Uint8Array(3 * checkedSpec.crop * checkedSpec.crop);

  async function preprocess(bytes: Uint8Array, into?: Float32Array, wait?: DecodeWait): Promise<PreprocessedImage> {
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
      return await decodeToTensor(bytes, format, name, header, into);
    } finally {
      release?.();
    }
  }

  async function decodeToTensor(
    bytes: Uint8Array,
    format: ImageFormat,
    name: string,
    header: ImageHeader,
    into: Float32Array | undefined,
  ): Promise<PreprocessedImage> {
    const plan = planResize(header.width, header.height, checkedSpec.resize, checkedSpec.crop);
    // CMYK with alpha (rare, TIFF only) is left to libvips' ICC conversion.
    const colour = header.space === 'cmyk' && !header.hasAlpha ? 'cmyk' : 'srgb';
    // GIF alpha is all or nothing, so flattening (cheap, before any resize) replaces dropping it;
    // without a transparent index the alpha is opaque and the colour never shows.
    const flatten = format === 'gif' ? (gifTransparentColour(bytes) ?? ([0, 0, 0] as const)) : undefined;
    let rgb: Uint8Array;
    const shrunk =
      plan.kind === 'reduce' && checkedSpec.decode === 'fast' && canShrinkOnLoad(format, header, colour, flatten)
        ? planShrinkOnLoad(header.width, header.height, checkedSpec.resize)
        : undefined;
    if (plan.kind === 'reduce' && shrunk === undefined) {
      const decoded = await decoder.decode({ bytes, header, maxPixels, resizeTo: plan.resized, region: plan.crop, colour, flatten }, name);
      // The main thread's share (writing the tensor, about 0.3 ms at 224², and resampling an
      // enlarged crop, about 0.4 ms) takes one turn of the event loop per image, so the decodes
      // of a burst of requests, finishing together, cannot hold the loop for long (turns.ts).
      await mainThreadTurns.next();
      // Converting the crop after resizing in CMYK differs from Pillow's convert-then-resize
      // only where C and K both change within a pixel's footprint (≤ 2 levels on the fixture).
      rgb = colour === 'cmyk' ? cmykToRgb(decoded) : decoded;
    } else {
      // Enlarging (or not resizing): decode only the source pixels the crop reads, and
      // resample them exactly as Pillow does. Shrinking on load: decode at reduced scale, then
      // Pillow's filter does the rest of the reduction (shrink-on-load.ts), as torchvision's
      // does all of it; on the main thread, 2–5 ms of CPU for a 224² crop of a 12 MP photo, so in
      // pieces of about 0.3 ms, each on a turn of the event loop (pil-resample.ts).
      const window = planBilinearWindow(shrunk ?? header, plan.resized, plan.crop);
      const decoded = await decoder.decode(
        { bytes, header, maxPixels, resizeTo: undefined, shrinkOnLoadTo: shrunk, region: window.source, colour, flatten },
        name,
      );
      await mainThreadTurns.next();
      const source = colour === 'cmyk' ? cmykToRgb(decoded) : decoded;
      if (plan.kind === 'identity') rgb = source;
      // The rest of a reduction takes milliseconds: in pieces, each on a turn of its own, into
      // an array of its own (other images' pieces run in between).
      else if (shrunk !== undefined) rgb = await window.runInTurns(source, mainThreadTurns);
      else rgb = window.run(source, enlarged);
    }
    return { data: writeTensor(rgb, into), format, width: header.width, height: header.height };
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
