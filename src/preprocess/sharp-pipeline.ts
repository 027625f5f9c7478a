/**
 * The one module that imports sharp (libvips). It reads image headers and decodes, orients,
 * converts, resizes and crops in libvips' threads (sharp runs each call in libuv's pool), and
 * hands back only the few kilobytes of 8-bit pixels the model will see.
 *
 * Process-wide libvips settings, applied once on first use (sharp has no per-instance ones):
 * - only the JPEG, PNG, WebP, GIF, TIFF and HEIF/AVIF loaders may run (`sharp.block`), so even
 *   bytes that slipped past the magic-number check could never reach the SVG, PDF or other
 *   loaders;
 * - the operation cache is off: every upload is new, so it would only hold memory;
 * - sharp's own default of one libvips thread per image on glibc is kept: images are processed
 *   in parallel by libuv's pool (UV_THREADPOOL_SIZE, 4 by default), which uses the cores better
 *   under load than several threads on one image, and fragments memory less.
 */
import sharp, { type Metadata, type Sharp, type SharpOptions } from 'sharp';
import { errors, isServingError } from '../errors.js';
import type { Region, Size } from './geometry.js';

export interface ImageHeader {
  /** libvips' name of the format: `jpeg`, `png`, `webp`, `gif`, `tiff` or `heif` (AVIF included). */
  readonly format: string;
  /** HEIF only: the codec of the image item, e.g. `av1` or `hevc`. */
  readonly compression: string | undefined;
  /** Size as displayed, EXIF orientation applied; the first frame or page only. */
  readonly width: number;
  readonly height: number;
  /** libvips' interpretation, e.g. `srgb`, `b-w`, `cmyk`, `rgb16`, `grey16`. */
  readonly space: string;
  readonly hasAlpha: boolean;
  /** Bands as stored, alpha included. */
  readonly channels: number;
  /** Bytes per sample as decoded: 1 for 8-bit images, 2 for 16-bit, 4 or 8 for float and 32-bit TIFF. */
  readonly bytesPerSample: number;
  /** Stored as displayed: no EXIF orientation, or orientation 1. */
  readonly upright: boolean;
}

export interface DecodeRequest {
  readonly bytes: Uint8Array;
  readonly header: ImageHeader;
  /** Refuse (413) an image whose decoded frame has more pixels than this. */
  readonly maxPixels: number;
  /** Resize the oriented image to this size first (antialiased bilinear); `undefined` keeps its size. */
  readonly resizeTo: Size | undefined;
  /** The region to return, in the coordinates of the (resized) oriented image. */
  readonly region: Region;
  /** `srgb`: 3 bytes a pixel, R G B. `cmyk`: 4 bytes a pixel, C M Y K (no colour management). */
  readonly colour: 'srgb' | 'cmyk';
  /**
   * Blend alpha onto this colour before anything else instead of dropping it. Only for
   * all-or-nothing alpha (GIF), where that equals Pillow's palette colour under transparency.
   */
  readonly flatten?: readonly [number, number, number];
  /**
   * Decode a JPEG or WebP at reduced scale, to this size (shrink-on-load.ts says how it is
   * chosen), and return `region` of that; only for sRGB without alpha, and without `resizeTo`.
   */
  readonly shrinkOnLoadTo?: Size;
}

export interface ImageDecoder {
  /** Reads the header only. Throws INVALID_IMAGE when it cannot be parsed. */
  readHeader(bytes: Uint8Array, formatName: string): Promise<ImageHeader>;
  /** Decodes `request.region`, packed row by row. Throws INVALID_IMAGE or IMAGE_TOO_LARGE. */
  decode(request: DecodeRequest, formatName: string): Promise<Uint8Array>;
}

const ALLOWED_LOADERS = [
  'VipsForeignLoadJpegBuffer',
  'VipsForeignLoadPngBuffer',
  'VipsForeignLoadWebpBuffer',
  'VipsForeignLoadNsgifBuffer',
  'VipsForeignLoadTiffBuffer',
  'VipsForeignLoadHeifBuffer',
];

let configured = false;

function configureLibvips(): void {
  if (configured) return;
  sharp.block({ operation: ['VipsForeignLoad'] });
  sharp.unblock({ operation: ALLOWED_LOADERS });
  sharp.cache(false);
  configured = true;
}

/**
 * Input options shared by every call.
 * - `failOn: 'error'`: refuse truncated images and decoder errors, as Pillow does ("image file
 *   is truncated", "broken data stream"), instead of returning grey where data is missing; but
 *   accept decoder warnings, as Pillow does: those that real cameras' files often raise (e.g.
 *   extraneous bytes between JPEG markers), and libjpeg's on corrupt entropy-coded data. Of
 *   libvips' levels it is the one closest to Pillow's verdicts on the damaged-image corpus
 *   (test/integration/decode-verdicts.test.ts; docs/security.md lists where they still
 *   differ): `warning` refuses JPEGs that Pillow decodes, `truncated` accepts broken TIFFs.
 * - `limitInputPixels`: libvips' own check of the frame it is about to decode, behind the
 *   header check done before decoding.
 * - `ignoreIcc`: Pillow's `convert('RGB')` ignores embedded ICC profiles, so the model was
 *   trained on the stored values, not colour-managed ones.
 * - `pages: 1`: the first frame of an animated GIF or WebP, or the first page of a TIFF.
 */
function inputOptions(maxPixels: number | false): SharpOptions {
  return { failOn: 'error', limitInputPixels: maxPixels, autoOrient: true, ignoreIcc: true, pages: 1, page: 0 };
}

function translate(error: unknown, formatName: string): Error {
  const message = error instanceof Error ? error.message : String(error);
  if (/exceeds pixel limit/i.test(message)) {
    return errors.IMAGE_TOO_LARGE('The image has more pixels than this server accepts', { cause: error });
  }
  return errors.INVALID_IMAGE(`The ${formatName} image is truncated or corrupt and could not be decoded`, { cause: error });
}

async function readHeader(bytes: Uint8Array, formatName: string): Promise<ImageHeader> {
  configureLibvips();
  let meta: Metadata;
  try {
    // No pixel limit here: the caller compares the size with its own limit, so an oversized
    // image gets a 413 that says so rather than a decoder error.
    meta = await sharp(bytes, inputOptions(false)).metadata();
  } catch (error) {
    throw translate(error, formatName);
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!meta.format || !width || !height) {
    throw errors.INVALID_IMAGE(`The ${formatName} image has no readable size`);
  }
  return {
    format: meta.format,
    compression: meta.compression,
    width,
    height,
    space: meta.space ?? 'unknown',
    hasAlpha: meta.hasAlpha === true,
    channels: meta.channels ?? 3,
    // An unknown format is counted as the widest, so a memory bound made from it stays a bound.
    bytesPerSample: BYTES_PER_SAMPLE[meta.depth ?? ''] ?? 16,
    upright: (meta.orientation ?? 1) === 1,
  };
}

/** Bytes a sample of each of libvips' band formats takes. */
const BYTES_PER_SAMPLE: Readonly<Record<string, number>> = {
  uchar: 1,
  char: 1,
  ushort: 2,
  short: 2,
  uint: 4,
  int: 4,
  float: 4,
  complex: 8,
  double: 8,
  dpcomplex: 16,
};

function finish(pipeline: Sharp, colour: DecodeRequest['colour']): Sharp {
  return colour === 'cmyk' ? pipeline.toColourspace('cmyk').raw() : pipeline.removeAlpha().toColourspace('srgb').raw();
}

function expectBytes(data: Buffer, region: Region, channels: number): Uint8Array {
  if (data.length !== region.width * region.height * channels) {
    throw errors.INTERNAL(`Decoder returned ${data.length} bytes for a ${region.width}×${region.height}×${channels} region`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** Copies `region` out of a packed `width`-pixel-wide image, `channels` bytes a pixel. */
function cropRows(data: Buffer, width: number, region: Region, channels: number): Uint8Array {
  const out = new Uint8Array(region.width * region.height * channels);
  const rowBytes = region.width * channels;
  for (let y = 0; y < region.height; y++) {
    const start = ((region.top + y) * width + region.left) * channels;
    out.set(data.subarray(start, start + rowBytes), y * rowBytes);
  }
  return out;
}

/**
 * Shrink-on-load: with `fastShrinkOnLoad: true` sharp lets libjpeg decode at the DCT scale the
 * size asks for (shrink-on-load.ts chooses sizes that get 1/8, 1/4 or 1/2) and libwebp at the
 * scale itself; libvips' linear kernel does the small rest. An EXIF-rotated image's region is
 * cut here rather than by extract(): with autoOrient, sharp orients before an extract and then
 * skips shrink-on-load, so a phone's rotated JPEG would be decoded at full scale. Its whole
 * reduced image is at most a ninth of the source's pixels.
 */
async function decodeShrunk(bytes: Uint8Array, header: ImageHeader, maxPixels: number, size: Size, region: Region): Promise<Uint8Array> {
  const shrunk = sharp(bytes, inputOptions(maxPixels)).resize(size.width, size.height, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: true });
  if (header.upright) return expectBytes(await finish(shrunk.extract(region), 'srgb').toBuffer(), region, 3);
  const { data, info } = await finish(shrunk, 'srgb').toBuffer({ resolveWithObject: true });
  if (info.width !== size.width || info.height !== size.height || info.channels !== 3) {
    throw errors.INTERNAL(`Decoder returned ${info.width}×${info.height}×${info.channels} for a ${size.width}×${size.height}×3 shrink-on-load`);
  }
  return cropRows(data, info.width, region, 3);
}

async function decode(request: DecodeRequest, formatName: string): Promise<Uint8Array> {
  configureLibvips();
  const { bytes, header, maxPixels, resizeTo, region, colour, flatten } = request;
  const channels = colour === 'cmyk' ? 4 : 3;
  try {
    if (request.shrinkOnLoadTo !== undefined) return await decodeShrunk(bytes, header, maxPixels, request.shrinkOnLoadTo, region);
    let input: Sharp;
    if (flatten !== undefined && colour === 'srgb') {
      // Flattening comes before resizing in sharp's pipeline, so no premultiplication follows.
      const [r, g, b] = flatten;
      input = sharp(bytes, inputOptions(maxPixels)).flatten({ background: { r, g, b } });
    } else if (resizeTo !== undefined && header.hasAlpha && colour === 'srgb') {
      // sharp premultiplies alpha before resizing and drops it only at the end, which changes
      // every pixel that is not opaque; Pillow's convert('RGB') drops alpha first and keeps the
      // colour stored under it. So decode without alpha first, then resize that. The
      // intermediate is the whole frame, 3 bytes a pixel (bounded by maxPixels).
      const { data, info } = await finish(sharp(bytes, inputOptions(maxPixels)), 'srgb').toBuffer({ resolveWithObject: true });
      input = sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } });
    } else {
      input = sharp(bytes, inputOptions(maxPixels));
      // Keep CMYK through the resize; the caller converts the crop as Pillow would.
      if (colour === 'cmyk') input = input.pipelineColourspace('cmyk');
    }
    if (resizeTo !== undefined) {
      // Bilinear with its support scaled to the reduction, like Pillow's antialiased resize.
      // fastShrinkOnLoad: false leaves at least a 2× reduction to the kernel after any JPEG
      // DCT-domain shrink; measured closer to Pillow than either shrinking fully on load or
      // not at all (libvips then box-filters by an integer factor first).
      input = input.resize(resizeTo.width, resizeTo.height, { fit: 'fill', kernel: 'linear', fastShrinkOnLoad: false });
    }
    // After resize() this crops the resized image; without it, the oriented source.
    input = input.extract(region);
    const data = await finish(input, colour).toBuffer();
    return expectBytes(data, region, channels);
  } catch (error) {
    if (isServingError(error)) throw error;
    throw translate(error, formatName);
  }
}

/** The libvips-backed decoder. Settings are process-wide; see the module comment. */
export function createSharpDecoder(): ImageDecoder {
  return { readHeader, decode };
}

/** Versions of sharp and libvips, for benchmark reports. */
export function decoderVersions(): { readonly sharp: string; readonly libvips: string } {
  return { sharp: sharp.versions.sharp ?? 'unknown', libvips: sharp.versions.vips };
}
