/**
 * The decoding half of preprocessing, once an image's header has passed every check: pixels
 * decoded (at reduced scale where shrink-on-load applies), resized, cropped and written as the
 * model's tensor. The same code runs on the main thread and in a preprocessing thread
 * (decode-thread.ts), so where an image is decoded never changes its tensor.
 */
import { cmykToRgb } from './cmyk.js';
import { planResize } from './geometry.js';
import { gifTransparentColour } from './gif-transparency.js';
import type { ImageFormat } from './image-format.js';
import { planBilinearWindow } from './pil-resample.js';
import type { ImageDecoder, ImageHeader } from './sharp-pipeline.js';
import { planShrinkOnLoad } from './shrink-on-load.js';
import type { PreprocessSpec } from './spec.js';
import { createTensorWriter } from './tensor.js';
import type { TurnQueue } from './turns.js';

/** An image whose header has been read and checked. */
export interface CheckedImage {
  readonly bytes: Uint8Array;
  readonly format: ImageFormat;
  /** The format's name for messages, e.g. `JPEG`. */
  readonly name: string;
  readonly header: ImageHeader;
}

/**
 * Decodes a checked image into its tensor, into `into` when given (`3 × crop × crop`
 * elements), else a new array. Rejects with INVALID_IMAGE or IMAGE_TOO_LARGE.
 */
export type TensorDecode = (image: CheckedImage, into?: Float32Array) => Promise<Float32Array>;

/**
 * Formats libvips decodes at reduced scale: JPEG (DCT scaling) and WebP. HEIF's only reduced
 * form is an embedded thumbnail, other pixels than the image's, so it is never used. Alpha and
 * CMYK keep their own paths (sharp-pipeline.ts), which decode at full scale.
 */
function canShrinkOnLoad(format: ImageFormat, header: ImageHeader, colour: 'srgb' | 'cmyk', flatten: unknown): boolean {
  return (format === 'jpeg' || format === 'webp') && colour === 'srgb' && !header.hasAlpha && flatten === undefined;
}

/**
 * @param spec a validated spec.
 * @param turns on the main thread, the queue its synchronous share waits for, a turn of the
 *   event loop per piece (turns.ts); `undefined` in a thread of its own, which runs it at once.
 */
export function createTensorDecode(spec: PreprocessSpec, maxPixels: number, decoder: ImageDecoder, turns: TurnQueue | undefined): TensorDecode {
  const writeTensor = createTensorWriter(spec);
  // Pixels of a resampled crop live only between window.run() and writeTensor(), with no await
  // between them, so one buffer serves every call and spares fresh memory's page faults.
  const resampled = new Uint8Array(3 * spec.crop * spec.crop);

  return async ({ bytes, format, name, header }, into) => {
    const plan = planResize(header.width, header.height, spec.resize, spec.crop);
    // CMYK with alpha (rare, TIFF only) is left to libvips' ICC conversion.
    const colour = header.space === 'cmyk' && !header.hasAlpha ? 'cmyk' : 'srgb';
    // GIF alpha is all or nothing, so flattening (cheap, before any resize) replaces dropping it;
    // without a transparent index the alpha is opaque and the colour never shows.
    const flatten = format === 'gif' ? (gifTransparentColour(bytes) ?? ([0, 0, 0] as const)) : undefined;
    let rgb: Uint8Array;
    const shrunk =
      plan.kind === 'reduce' && spec.decode === 'fast' && canShrinkOnLoad(format, header, colour, flatten)
        ? planShrinkOnLoad(header.width, header.height, spec.resize)
        : undefined;
    if (plan.kind === 'reduce' && shrunk === undefined) {
      const decoded = await decoder.decode({ bytes, header, maxPixels, resizeTo: plan.resized, region: plan.crop, colour, flatten }, name);
      // The main thread's share (writing the tensor, about 0.3 ms at 224², and resampling an
      // enlarged crop, about 0.4 ms) takes one turn of the event loop per image, so the decodes
      // of a burst of requests, finishing together, cannot hold the loop for long (turns.ts).
      await turns?.next();
      // Converting the crop after resizing in CMYK differs from Pillow's convert-then-resize
      // only where C and K both change within a pixel's footprint (≤ 2 levels on the fixture).
      rgb = colour === 'cmyk' ? cmykToRgb(decoded) : decoded;
    } else {
      // Enlarging (or not resizing): decode only the source pixels the crop reads, and
      // resample them exactly as Pillow does. Shrinking on load: decode at reduced scale, then
      // Pillow's filter does the rest of the reduction (shrink-on-load.ts), as torchvision's
      // does all of it; 2–5 ms of CPU for a 224² crop of a 12 MP photo, so on the main thread in
      // pieces of about 0.3 ms, each on a turn of the event loop (pil-resample.ts).
      const window = planBilinearWindow(shrunk ?? header, plan.resized, plan.crop);
      const decoded = await decoder.decode(
        { bytes, header, maxPixels, resizeTo: undefined, shrinkOnLoadTo: shrunk, region: window.source, colour, flatten },
        name,
      );
      await turns?.next();
      const source = colour === 'cmyk' ? cmykToRgb(decoded) : decoded;
      if (plan.kind === 'identity') rgb = source;
      // The rest of a reduction takes milliseconds: on the main thread in pieces, each on a
      // turn of its own, into an array of its own (other images' pieces run in between).
      else if (shrunk !== undefined && turns !== undefined) rgb = await window.runInTurns(source, turns);
      else rgb = window.run(source, resampled);
    }
    return writeTensor(rgb, into);
  };
}
