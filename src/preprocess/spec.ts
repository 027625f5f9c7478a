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
  /**
   * How a JPEG or WebP reduced 6× or more is decoded (a phone photo for a 224 or 32 px model).
   * `fast`: at 1/8, 1/4 or 1/2 scale in the DCT domain (JPEG) or by libwebp, then Pillow's own
   * bilinear filter for at least the last 2× (shrink-on-load.ts); measured closer to
   * torchvision's full decode than `exact`, 2–4× faster on EXIF-rotated JPEGs and on WebPs,
   * 4–6 ms slower on upright JPEGs at 224² (docs/models.md). `exact`: as every
   * other image is, by libvips' antialiased resize (after a DCT shrink that leaves it at least
   * 2×, for a JPEG stored upright). Every other image takes the same path either way.
   * @default "fast"
   */
  readonly decode: 'fast' | 'exact';
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
  decode: 'fast',
});

/**
 * Largest `resize` (and `crop`) accepted. The resized image is never materialised whole (only
 * the crop is computed), but a crop of this size is already a 256 MB float tensor.
 */
const MAX_SIDE = 8192;

/** What one field of a spec must be: `expected` completes "must be …" in messages. */
export interface PreprocessFieldRule {
  readonly expected: string;
  valid(value: unknown): boolean;
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

const isPositiveNumber = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value > 0;

function tripleRule(positive: boolean): PreprocessFieldRule {
  return {
    expected: positive ? 'an array of 3 finite numbers above 0' : 'an array of 3 finite numbers',
    valid: (value) => Array.isArray(value) && value.length === 3 && value.every((v) => typeof v === 'number' && Number.isFinite(v) && (!positive || v > 0)),
  };
}

const sideRule: PreprocessFieldRule = { expected: `an integer from 1 to ${MAX_SIDE}`, valid: (value) => isIntegerIn(value, 1, MAX_SIDE) };

/**
 * The rule of each field, on its own: the one place a preprocessing field is validated, for a
 * whole spec here and for a model's `config.json` (serving/model-config.ts), which names the
 * file. Between fields, only `crop ≤ resize` is checked, by each once the spec is complete.
 */
export const PREPROCESS_FIELD_RULES: { readonly [K in keyof PreprocessSpec]: PreprocessFieldRule } = Object.freeze({
  resize: sideRule,
  crop: sideRule,
  mean: tripleRule(false),
  std: tripleRule(true),
  scale: { expected: 'a finite number above 0', valid: isPositiveNumber },
  channels: { expected: '"RGB" or "BGR"', valid: (value: unknown) => value === 'RGB' || value === 'BGR' },
  layout: { expected: '"NCHW" or "NHWC"', valid: (value: unknown) => value === 'NCHW' || value === 'NHWC' },
  decode: { expected: '"fast" or "exact"', valid: (value: unknown) => value === 'fast' || value === 'exact' },
});

function fail(field: string, expected: string, got: unknown): never {
  throw new RangeError(`Expected preprocess \`${field}\` to be ${expected}, got \`${JSON.stringify(got) ?? String(got)}\``);
}

function frozenTriple(value: readonly number[]): readonly [number, number, number] {
  return Object.freeze([value[0]!, value[1]!, value[2]!]) as unknown as readonly [number, number, number];
}

/** Returns a frozen copy of `spec`, or throws a RangeError naming the first bad field. */
export function validatePreprocessSpec(spec: PreprocessSpec): PreprocessSpec {
  if (typeof spec !== 'object' || spec === null) throw new TypeError('Expected a preprocess spec object');
  // `decode` came later than the other fields: a spec written without it gets the default.
  const complete = { ...spec, decode: spec.decode ?? IMAGENET_PREPROCESS.decode };
  for (const [field, rule] of Object.entries(PREPROCESS_FIELD_RULES)) {
    const value = complete[field as keyof PreprocessSpec];
    if (!rule.valid(value)) fail(field, rule.expected, value);
  }
  if (spec.crop > spec.resize) fail('crop', `an integer from 1 to resize (${spec.resize})`, spec.crop);
  return Object.freeze({
    resize: spec.resize,
    crop: spec.crop,
    mean: frozenTriple(spec.mean),
    std: frozenTriple(spec.std),
    scale: spec.scale,
    channels: spec.channels,
    layout: spec.layout,
    decode: complete.decode,
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
