/**
 * What a model wants done to an image before it sees it, and how large an image may be.
 * Validated once when a preprocessor is built, so a bad model config fails at startup with a
 * precise message rather than on the first request.
 */

export interface PreprocessSpec {
  /** Shorter side is resized to this many pixels (antialiased bilinear, like torchvision Resize on PIL). */
  readonly resize: number;
  /** Centre square crop, in pixels (the model's H = W). At most `resize`. */
  readonly crop: number;
  /** Subtracted from each channel after scaling, in the order of `channels`. */
  readonly mean: readonly [number, number, number];
  /** Each channel is divided by this after the mean is subtracted, in the order of `channels`. */
  readonly std: readonly [number, number, number];
  /** Pixel values are divided by this before mean/std (255 → [0,1]). */
  readonly scale: number;
  /** Channel order of the model's input; `mean` and `std` follow the same order. */
  readonly channels: 'RGB' | 'BGR';
  /** Layout of one image in the tensor: `NCHW` writes planes C×H×W, `NHWC` writes H×W×C. */
  readonly layout: 'NCHW' | 'NHWC';
}

export interface ImageLimits {
  /** width × height above which an image is refused before decoding */
  readonly maxPixels: number;
}

/** torchvision's ImageNet evaluation transform: Resize(256), CenterCrop(224), ToTensor, Normalize. */
export const IMAGENET_PREPROCESS: PreprocessSpec = Object.freeze({
  resize: 256,
  crop: 224,
  mean: Object.freeze([0.485, 0.456, 0.406]) as unknown as readonly [number, number, number],
  std: Object.freeze([0.229, 0.224, 0.225]) as unknown as readonly [number, number, number],
  scale: 255,
  channels: 'RGB',
  layout: 'NCHW',
});

/**
 * Largest `resize` accepted. The resized image is never materialised whole (only the crop is
 * computed), but a crop of this size is already a 256 MB float tensor.
 */
const MAX_SIDE = 8192;

function fail(field: string, expected: string, got: unknown): never {
  throw new RangeError(`Expected preprocess \`${field}\` to be ${expected}, got \`${JSON.stringify(got) ?? String(got)}\``);
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function checkTriple(field: string, value: unknown, positive: boolean): readonly [number, number, number] {
  const expected = positive ? 'an array of 3 finite numbers above 0' : 'an array of 3 finite numbers';
  if (!Array.isArray(value) || value.length !== 3) fail(field, expected, value);
  for (const v of value as unknown[]) {
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0)) fail(field, expected, value);
  }
  const [a, b, c] = value as number[];
  return Object.freeze([a as number, b as number, c as number]) as unknown as readonly [number, number, number];
}

/** Returns a frozen copy of `spec`, or throws a RangeError naming the first bad field. */
export function validatePreprocessSpec(spec: PreprocessSpec): PreprocessSpec {
  if (typeof spec !== 'object' || spec === null) throw new TypeError('Expected a preprocess spec object');
  if (!isIntegerIn(spec.resize, 1, MAX_SIDE)) fail('resize', `an integer from 1 to ${MAX_SIDE}`, spec.resize);
  if (!isIntegerIn(spec.crop, 1, spec.resize)) fail('crop', `an integer from 1 to resize (${spec.resize})`, spec.crop);
  const mean = checkTriple('mean', spec.mean, false);
  const std = checkTriple('std', spec.std, true);
  if (typeof spec.scale !== 'number' || !Number.isFinite(spec.scale) || spec.scale <= 0) {
    fail('scale', 'a finite number above 0', spec.scale);
  }
  if (spec.channels !== 'RGB' && spec.channels !== 'BGR') fail('channels', '"RGB" or "BGR"', spec.channels);
  if (spec.layout !== 'NCHW' && spec.layout !== 'NHWC') fail('layout', '"NCHW" or "NHWC"', spec.layout);
  return Object.freeze({
    resize: spec.resize,
    crop: spec.crop,
    mean,
    std,
    scale: spec.scale,
    channels: spec.channels,
    layout: spec.layout,
  });
}

/** Returns a frozen copy of `limits`, or throws a RangeError. */
export function validateImageLimits(limits: ImageLimits): ImageLimits {
  if (typeof limits !== 'object' || limits === null) throw new TypeError('Expected an image limits object');
  const { maxPixels } = limits;
  // libvips takes the limit as an integer; 2^53 keeps width × height exact in a double.
  if (!isIntegerIn(maxPixels, 1, Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`Expected \`maxPixels\` to be a positive integer, got \`${String(maxPixels)}\``);
  }
  return Object.freeze({ maxPixels });
}
