/**
 * What a JPEG decoder will face, read from the marker structure alone: how many scans (SOS
 * segments) the stream holds, whether the frame is progressive, and the frame's size.
 *
 * Why: libjpeg decodes a progressive frame by running every scan over every block of the
 * components it covers, so its time grows as scans × pixels, while a scan can cost an attacker
 * a few dozen bytes (one end-of-band run that covers every block). Neither sharp 0.35 nor
 * libvips 8.18 can cap scans (libjpeg-turbo's cap is in TurboJPEG and djpeg, which libvips does
 * not use; jpegload's `unlimited` flag is about markers and warnings), and a decode cannot be
 * stopped once it runs in libuv's pool, so scans are counted here, before any decoder runs.
 *
 * The walk reads the stream as libjpeg does, so it finds the scans the decoder will decode:
 * segments are skipped by their length field (an EXIF thumbnail inside APP1 is never mistaken
 * for the image), and the walk ends at the first EOI, as the decoder does. One rule serves
 * between segments and inside a scan's entropy-coded data: go to the next 0xFF, pass any 0xFF
 * fill bytes, and pass on again if the byte after them is 0x00 or a marker without a segment
 * (RST0–RST7, TEM). Inside a scan, 0xFF 0x00 is a stuffed data byte and RSTn a restart;
 * between segments libjpeg skips stray bytes, 0xFF 0x00 included, with a warning, and ignores
 * RSTn. Either way neither starts a segment, so the data of a scan needs no parsing.
 *
 * Cost: linear in the input, each byte looked at a bounded number of times, and nothing
 * allocated in proportion to it. Measured on a 2-core VM: 0.15 ms per MB of real entropy-coded
 * data (memchr finds the rare 0xFF), 1.6 ms per MB at worst (0xFF 0x00 pairs back to back);
 * 0.5 ms for the whole 3,529-scan bomb described at MAX_JPEG_SCANS, under 0.1 ms to stop after
 * its 101st scan. It never throws on malformed or cut data: it reports what it saw and how the
 * walk ended.
 */

/**
 * The most scans accepted in one JPEG: the `maxScans` to give {@link inspectJpegScans}.
 *
 * What encoders make, counted with this module: of the 143 JPEGs on the build machine (test
 * fixtures, CIFAR-10 samples, documentation images), 137 are baseline with 1 scan and 6 are
 * progressive with 7 to 11; libjpeg's default progression (`cjpeg -progressive`, Pillow,
 * sharp's `progressive: true`) has 10 scans for YCbCr, 6 for greyscale and 18 for CMYK;
 * mozjpeg's scan search (sharp's `mozjpeg` or `optimiseScans`) 3 to 11 for YCbCr or
 * greyscale. 100 is five times the most seen.
 *
 * What it bounds (sharp 0.35.5, libvips 8.18.7 with mozjpeg, 2-core VM, a 6324×6324 frame,
 * i.e. MAX_IMAGE_PIXELS, at 4:4:4, decoded to a 32×32 crop): an empty scan costs 6 ms when it
 * holds one coefficient of one component and 20 ms when it refines coefficients 1–63, the
 * dearest kind found, against 0.15 s for the whole one-scan frame. The worst file measured at
 * this cap (CMYK, as many 1–63 refinements as a valid progression allows, then one-coefficient
 * scans) took 1.6–1.8 s; that is the bound, against 0.2 s for a real progressive 40-megapixel
 * photo. Without the cap, the 2,647-scan YCbCr bomb took 16.5 s
 * through the server's preprocessor and the 3,529-scan CMYK one 21 s, holding a libuv thread
 * all along. libvips does stop a JPEG at its 100th decoder warning, which defeats a file that
 * repeats one scan, but not a valid progression: each coefficient of each component may come
 * in its own scan and then be refined bit by bit, about 2,700 scans for YCbCr and 3,600 for
 * CMYK without a single warning. The bombs are `progressiveJpegScanBomb` in
 * bench/lib/hostile-images.ts.
 *
 * @default 100
 */
export const MAX_JPEG_SCANS = 100;

/** The frame header (SOFn) the decoder will use: the first one in the stream. */
export interface JpegFrame {
  /** The SOF marker's code: 0xc0 baseline, 0xc1 extended, 0xc2 progressive, 0xc3 lossless, 0xc9–0xcb arithmetic. */
  readonly marker: number;
  /** Bits per sample: 8 for nearly every file; 12 or 16 for extended and lossless ones. */
  readonly precision: number;
  /** Samples per line, as stored (before any EXIF orientation). */
  readonly width: number;
  /** Lines, as stored; 0 means a DNL marker gives the height after the first scan. */
  readonly height: number;
  /** Colour components: 1 (grey), 3 (YCbCr or RGB) or 4 (CMYK or YCCK). */
  readonly components: number;
  /**
   * 8×8 blocks of coefficients over all components, padded as libjpeg pads them. A multi-scan
   * decode (progressive, or one scan per component) holds all of them at once, 128 bytes each:
   * see {@link coefficientBufferBytes}.
   */
  readonly coefficientBlocks: number;
}

/**
 * How the walk ended:
 * - `eoi`: at the End Of Image marker, every scan counted;
 * - `scan-limit`: at the scan that passed `maxScans`, without looking further;
 * - `truncated`: the bytes ran out before EOI (a cut upload);
 * - `malformed`: a segment length below 2, which libjpeg refuses;
 * - `not-jpeg`: the bytes do not start with the SOI marker (0xFF 0xD8).
 */
export type JpegWalkEnd = 'eoi' | 'scan-limit' | 'truncated' | 'malformed' | 'not-jpeg';

export interface JpegScanReport {
  readonly end: JpegWalkEnd;
  /** SOS segments seen, up to and including the one that passed `maxScans`. */
  readonly scans: number;
  /** The stream holds more than `maxScans` scans (`end` is then `scan-limit`). */
  readonly exceedsMaxScans: boolean;
  /** The frame is progressive (SOF2, SOF6, SOF10 or SOF14); false without a frame. */
  readonly progressive: boolean;
  /** The first frame header, or `undefined` when none was whole before the walk ended. */
  readonly frame: JpegFrame | undefined;
  /** Where the walk stopped, in bytes from the start. */
  readonly bytesWalked: number;
  /** The first scan: how many components its SOS names, and where its entropy-coded data ends. */
  readonly firstScan: FirstScan | undefined;
}

export interface FirstScan {
  /** Components in the scan (the SOS's Ns). */
  readonly components: number;
  /**
   * Offset of the code byte of the marker that ends the scan's data, the first after its SOS
   * other than a stuffed 0x00 or a restart (RSTn), where libjpeg's marker reader takes over;
   * `undefined` when the walk ended before one.
   */
  readonly dataEnd: number | undefined;
}

export interface InspectJpegScansOptions {
  /**
   * Stop at the scan after this many; the report then says `exceedsMaxScans`. A whole number
   * from 0 up, or `Infinity` to count every scan. Servers pass {@link MAX_JPEG_SCANS}.
   * @default Infinity
   */
  readonly maxScans?: number;
}

/** Bytes of libjpeg's whole-image coefficient buffer: 64 coefficients of 2 bytes a block. */
const BYTES_PER_BLOCK = 128;

/**
 * Memory libjpeg allocates to decode a multi-scan JPEG (progressive, or one scan per
 * component): every coefficient of the image at once, before a single row comes out. A
 * single-scan baseline JPEG streams and needs none of it. Measured against peak RSS for
 * 6324×6324 frames: 120 MB predicted, 115 MiB (121 MB) measured for a 4:2:0 photo; 240 MB
 * and 224 MiB (235 MB) for 4:4:4 YCbCr; 320 MB and 300–311 MiB (315–326 MB) for CMYK.
 */
export function coefficientBufferBytes(frame: JpegFrame): number {
  return frame.coefficientBlocks * BYTES_PER_BLOCK;
}

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const TEM = 0x01;

/** Markers without a length field (T.81 B.1.1.3): SOI, EOI, TEM and RST0–RST7, the restart markers inside scans. */
export function isStandalone(code: number): boolean {
  return code === SOI || code === EOI || code === TEM || (code >= 0xd0 && code <= 0xd7);
}

/** RST0–RST7: restart markers, inside a scan's data. */
export function isRestart(code: number): boolean {
  return code >= 0xd0 && code <= 0xd7;
}

/** SOF0–SOF15 but DHT (0xc4), JPG (0xc8) and DAC (0xcc), which share the range. */
export function isStartOfFrame(code: number): boolean {
  return code >= 0xc0 && code <= 0xcf && code !== 0xc4 && code !== 0xc8 && code !== 0xcc;
}

/** SOF2 and SOF10, Huffman and arithmetic (and the hierarchical SOF6 and SOF14, which libjpeg refuses). */
function isProgressive(code: number): boolean {
  return code === 0xc2 || code === 0xc6 || code === 0xca || code === 0xce;
}

/**
 * The offset of the next 0xFF at or after `from`, or -1. A few bytes are looked at in a loop
 * before calling `indexOf` (memchr), whose call costs more than a short loop: that keeps 0xFF
 * 0x00 pairs sent back to back at 1.6 ms per MB rather than 5, while memchr crosses real
 * entropy-coded data, where an 0xFF comes every few hundred bytes.
 */
function indexOfFF(bytes: Uint8Array, from: number): number {
  const probeEnd = Math.min(bytes.length, from + 16);
  for (let at = from; at < probeEnd; at++) if (bytes[at] === 0xff) return at;
  return bytes.indexOf(0xff, probeEnd);
}

/**
 * The offset of the next marker's code byte at or after `from`, skipping anything that is not
 * an 0xFF and any run of 0xFF fill bytes; -1 when the bytes run out first.
 */
export function nextMarkerCode(bytes: Uint8Array, from: number): number {
  const ff = indexOfFF(bytes, from);
  if (ff < 0) return -1;
  let at = ff + 1;
  while (at < bytes.length && bytes[at] === 0xff) at++;
  return at < bytes.length ? at : -1;
}

const roundUp = (n: number, multiple: number) => Math.ceil(n / multiple) * multiple;

/** The frame header whose parameters start at `body`, or `undefined` if it is cut short. */
function readFrame(bytes: Uint8Array, code: number, body: number, bodyLength: number): JpegFrame | undefined {
  if (bodyLength < 6) return undefined;
  const height = ((bytes[body + 1] as number) << 8) | (bytes[body + 2] as number);
  const width = ((bytes[body + 3] as number) << 8) | (bytes[body + 4] as number);
  const components = bytes[body + 5] as number;
  if (bodyLength < 6 + 3 * components) return undefined;
  // Sampling factors outside 1–4 make libjpeg refuse the file; 1 keeps the sum finite here.
  const factor = (c: number, shift: number) => Math.max(1, ((bytes[body + 7 + 3 * c] as number) >> shift) & 0x0f);
  let hMax = 1;
  let vMax = 1;
  for (let c = 0; c < components; c++) {
    hMax = Math.max(hMax, factor(c, 4));
    vMax = Math.max(vMax, factor(c, 0));
  }
  // As libjpeg's jdinput.c and jdcoefct.c size them: blocks per component, rounded up to whole MCUs.
  let coefficientBlocks = 0;
  for (let c = 0; c < components; c++) {
    const h = factor(c, 4);
    const v = factor(c, 0);
    coefficientBlocks += roundUp(Math.ceil((width * h) / (hMax * 8)), h) * roundUp(Math.ceil((height * v) / (vMax * 8)), v);
  }
  return { marker: code, precision: bytes[body] as number, width, height, components, coefficientBlocks };
}

function validateMaxScans(maxScans: number): void {
  if (maxScans === Number.POSITIVE_INFINITY) return;
  if (typeof maxScans !== 'number' || !Number.isInteger(maxScans) || maxScans < 0) {
    throw new RangeError(`Expected \`maxScans\` to be a whole number from 0 up or Infinity, got \`${String(maxScans)}\``);
  }
}

/**
 * Walks the marker structure of `bytes` and reports its scans and frame, stopping at the scan
 * after `maxScans`; see the module comment for the rules it follows. Never throws for any
 * bytes; throws RangeError for a `maxScans` that is not a whole number from 0 up or Infinity.
 */
export function inspectJpegScans(bytes: Uint8Array, options: InspectJpegScansOptions = {}): JpegScanReport {
  const maxScans = options.maxScans ?? Number.POSITIVE_INFINITY;
  validateMaxScans(maxScans);
  let scans = 0;
  let frame: JpegFrame | undefined;
  let firstScanComponents = 0;
  let firstScanDataEnd: number | undefined;
  const report = (end: JpegWalkEnd, bytesWalked: number): JpegScanReport => ({
    end,
    scans,
    exceedsMaxScans: end === 'scan-limit',
    progressive: frame !== undefined && isProgressive(frame.marker),
    frame,
    bytesWalked: Math.min(bytesWalked, bytes.length),
    firstScan: scans === 0 ? undefined : { components: firstScanComponents, dataEnd: firstScanDataEnd },
  });

  if (bytes.length < 2 || bytes[0] !== 0xff || bytes[1] !== SOI) return report('not-jpeg', 0);
  let at = 2;
  for (;;) {
    const codeAt = nextMarkerCode(bytes, at);
    if (codeAt < 0) return report('truncated', bytes.length);
    const code = bytes[codeAt] as number;
    at = codeAt + 1;
    if (scans === 1 && firstScanDataEnd === undefined && code !== 0x00 && !isRestart(code)) firstScanDataEnd = codeAt;
    if (code === EOI) return report('eoi', at);
    // 0x00: a stuffed byte in a scan, stray data between segments. RSTn, TEM: nothing to skip.
    if (code === 0x00 || isStandalone(code)) continue;
    if (at + 2 > bytes.length) return report('truncated', bytes.length);
    const length = ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
    if (length < 2) return report('malformed', at);
    const end = at + length;
    if (isStartOfFrame(code) && frame === undefined && end <= bytes.length) {
      frame = readFrame(bytes, code, at + 2, length - 2);
    }
    if (code === SOS) {
      if (scans === 0 && at + 2 < bytes.length) firstScanComponents = bytes[at + 2] as number;
      scans++;
      if (scans > maxScans) return report('scan-limit', end);
    }
    if (end > bytes.length) return report('truncated', bytes.length);
    at = end;
  }
}
