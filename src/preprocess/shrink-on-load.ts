/**
 * Shrink-on-load (`decode: "fast"`): a JPEG decoded at 1/8, 1/4 or 1/2 scale in the DCT domain
 * (libjpeg's scaled IDCT, each output pixel the mean of a k×k block), a WebP at reduced scale by
 * libwebp, then Pillow's own bilinear filter (pil-resample.ts) for the rest of the reduction.
 *
 * Measured on the phone-photo set against torchvision's full decode (docs/models.md): the
 * filter that follows a DCT shrink decides the fidelity, not the shrink. libvips' resize
 * (an integer box shrink, then a bilinear step) after it fell below the bar on the ResNet-20
 * CIFAR-10 (97 % top-1), as it does after a full decode (98 %); Pillow's filter with at least
 * 2× of the reduction left to it gave 100 % and a probability cosine of 0.999, and 224² tensors
 * closer to torchvision's than the full decode through libvips (mean abs 0.004 vs 0.006).
 *
 * sharp has no option for the DCT scale itself: it picks one from the resize asked of it, and
 * one step less when the reduction's integer part equals the scale ("libjpeg rounding"). So the
 * size asked for is the image divided by k + 1: sharp then decodes at 1/k, and libvips' linear
 * kernel covers the remaining (k + 1)/k (1.125–1.5×).
 */
import type { Size } from './geometry.js';

/** The DCT scales libjpeg offers, largest first (1/8, 1/4, 1/2). */
const SCALES = [8, 4, 2] as const;

/** Reduction left to Pillow's filter after shrinking on load, at least. */
export const MIN_FILTER_REDUCTION = 2;

/**
 * The size to decode a `width × height` image at before Pillow's filter resizes its shorter
 * side to `resize`, or `undefined` when no reduced scale leaves `MIN_FILTER_REDUCTION` to the
 * filter (a reduction under 6×: 2× left after 1/2 and the 1.5× step), and the image is decoded
 * as with `decode: "exact"`.
 */
export function planShrinkOnLoad(width: number, height: number, resize: number): Size | undefined {
  const short = Math.min(width, height);
  const k = SCALES.find((scale) => short / (scale + 1) >= MIN_FILTER_REDUCTION * resize);
  if (k === undefined) return undefined;
  return { width: Math.floor(width / (k + 1)), height: Math.floor(height / (k + 1)) };
}
