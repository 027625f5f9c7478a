/**
 * torchvision's resize and centre-crop arithmetic (torchvision 0.14, `transforms.functional`),
 * reproduced to the pixel: the sizes and offsets here decide which source pixels the model sees.
 */

export interface Size {
  readonly width: number;
  readonly height: number;
}

export interface Region extends Size {
  readonly left: number;
  readonly top: number;
}

/**
 * `Resize(resize)` with an int: the shorter side becomes `resize`, the longer one
 * `int(resize * long / short)` (truncated, as Python's int() does on a positive float).
 */
export function resizedSize(width: number, height: number, resize: number): Size {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newLong = Math.trunc((resize * long) / short);
  return width <= height ? { width: resize, height: newLong } : { width: newLong, height: resize };
}

/** Python 3's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `CenterCrop(crop)`: `top = int(round((height - crop) / 2.0))`, likewise `left`. The caller
 * guarantees `crop` fits (the resized shorter side is `resize` ≥ `crop`), so torchvision's
 * zero padding never applies.
 */
export function centreCrop(size: Size, crop: number): Region {
  return {
    left: roundHalfEven((size.width - crop) / 2),
    top: roundHalfEven((size.height - crop) / 2),
    width: crop,
    height: crop,
  };
}

export type ResizeKind = 'reduce' | 'identity' | 'enlarge';

export interface ResizePlan {
  /** Size of the whole image after resizing (never materialised: only `crop` is computed). */
  readonly resized: Size;
  /** The region of the resized image the model sees. */
  readonly crop: Region;
  /** Resizing is uniform, so both axes shrink, both stay, or both grow. */
  readonly kind: ResizeKind;
}

export function planResize(width: number, height: number, resize: number, crop: number): ResizePlan {
  const resized = resizedSize(width, height, resize);
  const short = Math.min(width, height);
  const kind: ResizeKind = short > resize ? 'reduce' : short === resize ? 'identity' : 'enlarge';
  return { resized, crop: centreCrop(resized, crop), kind };
}
