/**
 * A memory budget for decoding, shared by every model in the process (libvips' memory is the
 * process's). Each decode first reserves what it may hold at its peak, estimated from the image
 * header (`estimateDecodeBytes`), and returns it when it ends:
 * - an image whose estimate is over `maxImageBytes` is refused (413 IMAGE_TOO_LARGE) before any
 *   pixel is decoded: pixels alone do not bound memory, a 16-bit RGBA interlaced PNG of
 *   40 megapixels needs 320 MB where an 8-bit JPEG of the same size streams in a few;
 * - decodes that would take the total over `capacityBytes` wait, first come first served, until
 *   enough is returned; a waiting image leaves when its request's deadline passes (504
 *   DEADLINE_EXCEEDED) or its client goes away (CANCELLED), having decoded nothing. Waiting
 *   rather than refusing at once: a burst of honest phone photos is served, not turned away,
 *   and the deadline already bounds how long anyone waits.
 *
 * Since decode cost grows with the same pixels and bytes, the budget also bounds how many
 * expensive decodes run at once, so they cannot take every libuv thread from the cheap ones.
 */
import { errors } from '../errors.js';
import type { JpegFrame } from './jpeg-scans.js';
import { coefficientBufferBytes } from './jpeg-scans.js';

export interface DecodeBudgetOptions {
  /** Bytes all decodes in flight may hold together. */
  readonly capacityBytes: number;
  /** Bytes one image's decode may hold; at most `capacityBytes`. */
  readonly maxImageBytes: number;
  /** Clock of the deadlines, in ms. @default performance.now */
  readonly now?: () => number;
}

/** When a waiting decode gives up: the request's deadline and its cancellation. */
export interface DecodeWait {
  /** Absolute, on `now`'s clock, in ms. */
  readonly deadline?: number;
  readonly signal?: AbortSignal;
}

export interface DecodeBudget {
  readonly capacityBytes: number;
  readonly maxImageBytes: number;
  /** Bytes reserved by decodes running now. */
  readonly usedBytes: number;
  /** Decodes waiting for room. */
  readonly waiting: number;
  /**
   * Reserves `bytes`, waiting for room if need be. Resolves to the function that returns them
   * (idempotent). Rejects with IMAGE_TOO_LARGE, DEADLINE_EXCEEDED or CANCELLED.
   */
  reserve(bytes: number, wait?: DecodeWait): Promise<() => void>;
}

interface Waiter {
  readonly bytes: number;
  readonly grant: () => void;
}

function checkBytes(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`Expected \`${name}\` to be a positive integer of bytes, got \`${value}\``);
}

export function createDecodeBudget(options: DecodeBudgetOptions): DecodeBudget {
  const { capacityBytes, maxImageBytes } = options;
  checkBytes('capacityBytes', capacityBytes);
  checkBytes('maxImageBytes', maxImageBytes);
  if (maxImageBytes > capacityBytes) {
    throw new RangeError(
      `Expected \`maxImageBytes\` (${maxImageBytes}) to be at most \`capacityBytes\` (${capacityBytes}): such an image could never be decoded`,
    );
  }
  const now = options.now ?? (() => performance.now());
  let reserved = 0;
  const queue: Waiter[] = [];

  const take = (bytes: number): (() => void) => {
    reserved += bytes;
    let returned = false;
    return () => {
      if (returned) return;
      returned = true;
      reserved -= bytes;
      grantWaiters();
    };
  };

  // First come, first served: a large image at the head is not overtaken by small ones behind
  // it, or a steady stream of small ones could keep it waiting until its deadline.
  const grantWaiters = () => {
    while (queue.length > 0 && reserved + queue[0]!.bytes <= capacityBytes) queue.shift()!.grant();
  };

  return {
    capacityBytes,
    maxImageBytes,
    get usedBytes() {
      return reserved;
    },
    get waiting() {
      return queue.length;
    },
    reserve(bytes, wait = {}) {
      if (bytes > maxImageBytes) {
        return Promise.reject(
          errors.IMAGE_TOO_LARGE(
            `Decoding this image would take about ${Math.ceil(bytes / 2 ** 20)} MiB; at most ${Math.floor(maxImageBytes / 2 ** 20)} MiB are allowed per image`,
          ),
        );
      }
      const { deadline, signal } = wait;
      if (signal?.aborted) return Promise.reject(errors.CANCELLED());
      if (deadline !== undefined && now() >= deadline) return Promise.reject(errors.DEADLINE_EXCEEDED());
      if (queue.length === 0 && reserved + bytes <= capacityBytes) return Promise.resolve(take(bytes));
      return new Promise((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const leave = (err: Error) => {
          const i = queue.indexOf(waiter);
          if (i < 0) return;
          queue.splice(i, 1);
          cleanup();
          reject(err);
          // The head may have been what held the others back.
          grantWaiters();
        };
        const onAbort = () => leave(errors.CANCELLED());
        const cleanup = () => {
          if (timer !== undefined) clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        };
        const waiter: Waiter = {
          bytes,
          grant: () => {
            cleanup();
            resolve(take(bytes));
          },
        };
        queue.push(waiter);
        signal?.addEventListener('abort', onAbort, { once: true });
        if (deadline !== undefined) {
          timer = setTimeout(
            () => leave(errors.DEADLINE_EXCEEDED('The request deadline passed while its image waited for decoding memory')),
            Math.max(0, deadline - now()),
          );
          timer.unref();
        }
      });
    },
  };
}

/** What `estimateDecodeBytes` needs from an image's header. */
export interface DecodeFootprint {
  readonly width: number;
  readonly height: number;
  /** Bands as stored, alpha included (libvips' `channels`). */
  readonly channels: number;
  /** Bytes per sample as decoded: 1 for 8-bit, 2 for 16-bit, 4 for 32-bit. */
  readonly bytesPerSample: number;
  /** A progressive JPEG's frame, whose decoder holds every DCT coefficient of the image. */
  readonly jpegFrame?: JpegFrame;
}

/**
 * The most memory a decode of this image may hold, in bytes: the whole frame as decoded (width ×
 * height × bands × bytes per sample), plus a progressive JPEG's coefficient buffer. A bound, not
 * a forecast: baseline JPEGs and plain PNGs stream through libvips in far less, but interlaced
 * PNGs, progressive JPEGs, GIF, WebP, HEIF and images with alpha (decoded whole before resizing,
 * see sharp-pipeline.ts) do hold a whole frame, and counting every image the same way keeps the
 * bound true whatever libvips decides. Measured peaks (bench/hostile, RSS sampled every 2 ms):
 * a 6324² 16-bit RGBA interlaced PNG +305–332 MiB against 320 MB estimated; progressive JPEGs'
 * coefficient buffers within 5 % of `coefficientBufferBytes`.
 */
export function estimateDecodeBytes(image: DecodeFootprint): number {
  const frame = image.width * image.height * Math.max(1, image.channels) * Math.max(1, image.bytesPerSample);
  return frame + (image.jpegFrame !== undefined ? coefficientBufferBytes(image.jpegFrame) : 0);
}
