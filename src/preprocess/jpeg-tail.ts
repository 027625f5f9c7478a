/**
 * What libjpeg would find after a one-scan JPEG's image data, had it read on.
 *
 * Pillow finishes every JPEG decode with `jpeg_finish_decompress`, which reads the stream on
 * from where the scan's data ended to EOI (or until the bytes run out, which Pillow then
 * ignores), and an *error* there makes Pillow refuse the image ("broken data stream"). libvips
 * stops reading a sequential JPEG whose one scan holds every component once its last row is
 * decoded, so it never meets that error at any `failOn` level, and the image would be
 * classified. That is what a marker inside the scan's data does: libjpeg warns ("premature
 * end of data segment"), greys out the rest of the scan, and the marker reader then meets,
 * say, a second SOF. Progressive JPEGs are read to their end by libvips too, which then
 * refuses what Pillow refuses (checked on the decode-verdict corpus); sequential JPEGs of
 * several scans, which common encoders do not write, are left to libvips.
 *
 * So for one-scan sequential JPEGs this reads the markers after the scan as libjpeg-turbo
 * 2.1's marker reader does (jdmarker.c: `read_markers`, `get_dht`, `get_dqt`, `get_dri`,
 * `get_dac`, `get_sof`, `get_soi`, `get_sos`, `skip_variable`, `next_marker`; jdinput.c's
 * `consume_markers` refuses any further scan in a one-scan stream), and says which error it
 * would raise. Where the bytes end first, libjpeg suspends and Pillow accepts: so does this.
 * It starts where inspectJpegScans' walk saw the scan's data end, so the only bytes read
 * again are those after it, usually none but EOI.
 */
import { isStandalone, isStartOfFrame, nextMarkerCode, type JpegScanReport } from './jpeg-scans.js';

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DHT = 0xc4;
const DAC = 0xcc;
const DQT = 0xdb;
const DRI = 0xdd;
const DNL = 0xdc;
const COM = 0xfe;
const APP0 = 0xe0;
const APP15 = 0xef;
/** Frame types libjpeg decodes; the other SOFn (and JPG, 0xc8) are refused as unsupported. */
const DECODED_FRAMES = new Set([0xc0, 0xc1, 0xc2, 0xc9, 0xca]);
const NUM_HUFF_TBLS = 4;
const NUM_QUANT_TBLS = 4;
const NUM_ARITH_TBLS = 16;

/** The bytes ran out: libjpeg suspends, and Pillow accepts once every row is out. */
const SUSPENDED = Symbol('suspended');
type Step = number | string | typeof SUSPENDED;

const u16 = (bytes: Uint8Array, at: number) => ((bytes[at] as number) << 8) | (bytes[at + 1] as number);

/** get_dht: the offset after the segment, or the error. */
function readDht(bytes: Uint8Array, at: number): Step {
  if (at + 2 > bytes.length) return SUSPENDED;
  let length = u16(bytes, at) - 2;
  let p = at + 2;
  while (length > 16) {
    if (p + 17 > bytes.length) return SUSPENDED;
    let index = bytes[p] as number;
    let count = 0;
    for (let i = 1; i <= 16; i++) count += bytes[p + i] as number;
    p += 17;
    length -= 17;
    if (count > 256 || count > length) return 'a bogus Huffman table definition';
    if (p + count > bytes.length) return SUSPENDED;
    p += count;
    length -= count;
    if (index & 0x10) index -= 0x10;
    if (index >= NUM_HUFF_TBLS) return `a bogus DHT index ${index}`;
  }
  return length === 0 ? p : 'a bogus DHT length';
}

/** get_dqt: tables of 64 entries, of 1 byte or (precision 1) 2 bytes each. */
function readDqt(bytes: Uint8Array, at: number): Step {
  if (at + 2 > bytes.length) return SUSPENDED;
  let length = u16(bytes, at) - 2;
  let p = at + 2;
  while (length > 0) {
    if (p + 1 > bytes.length) return SUSPENDED;
    const n = bytes[p] as number;
    if ((n & 0x0f) >= NUM_QUANT_TBLS) return `a bogus DQT index ${n & 0x0f}`;
    const size = 1 + (n >> 4 !== 0 ? 128 : 64);
    if (p + size > bytes.length) return SUSPENDED;
    p += size;
    length -= size;
  }
  return length === 0 ? p : 'a bogus DQT length';
}

/** get_dac. */
function readDac(bytes: Uint8Array, at: number): Step {
  if (at + 2 > bytes.length) return SUSPENDED;
  let length = u16(bytes, at) - 2;
  let p = at + 2;
  while (length > 0) {
    if (p + 2 > bytes.length) return SUSPENDED;
    const index = bytes[p] as number;
    const value = bytes[p + 1] as number;
    p += 2;
    length -= 2;
    if (index >= 2 * NUM_ARITH_TBLS) return `a bogus DAC index ${index}`;
    if (index < NUM_ARITH_TBLS && (value & 0x0f) > value >> 4) return `a bogus DAC value ${value}`;
  }
  return length === 0 ? p : 'a bogus DAC length';
}

/** skip_variable: the length field, then whatever it says (nothing if it says less than 2). */
function skipSegment(bytes: Uint8Array, at: number): Step {
  if (at + 2 > bytes.length) return SUSPENDED;
  return at + Math.max(2, u16(bytes, at));
}

/** One marker after the scan (its code at `codeAt`): where reading goes on, or the error. */
function readMarker(bytes: Uint8Array, codeAt: number): Step {
  const code = bytes[codeAt] as number;
  const at = codeAt + 1;
  if (code === 0x00 || isStandalone(code)) return code === SOI ? 'a second SOI marker' : at;
  if (isStartOfFrame(code) || code === 0xc8) {
    if (!DECODED_FRAMES.has(code)) return `an unsupported SOF${code - 0xc0} marker`;
    // get_sof reads the length, precision, size and component count before it objects.
    return at + 8 <= bytes.length ? 'a second SOF marker' : SUSPENDED;
  }
  if (code === SOS) {
    // A whole SOS is either refused by get_sos or, being a further scan, by consume_markers.
    if (at + 2 > bytes.length) return SUSPENDED;
    return at + u16(bytes, at) <= bytes.length ? 'a second scan where one was declared' : SUSPENDED;
  }
  if (code === DHT) return readDht(bytes, at);
  if (code === DQT) return readDqt(bytes, at);
  if (code === DAC) return readDac(bytes, at);
  if (code === DRI) {
    if (at + 2 > bytes.length) return SUSPENDED;
    return u16(bytes, at) === 4 ? at + 4 : 'a bogus DRI length';
  }
  if ((code >= APP0 && code <= APP15) || code === COM || code === DNL) return skipSegment(bytes, at);
  return `an unknown marker 0x${code.toString(16)}`;
}

/**
 * The error libjpeg's marker reader would raise after the image data of `bytes`, a JPEG
 * walked by inspectJpegScans into `scans`, or `undefined` when it would raise none, when the
 * JPEG is not sequential with one scan of all its components (libvips reads those to the end
 * itself), or when the walk ended inside the scan (the decoder reports a cut scan). It starts
 * where the walk found the scan's data to end, so the entropy-coded data is walked once.
 */
export function findJpegTailError(bytes: Uint8Array, scans: JpegScanReport): string | undefined {
  const { frame, firstScan } = scans;
  if (frame === undefined || (frame.marker !== 0xc0 && frame.marker !== 0xc1)) return undefined;
  if (firstScan === undefined || firstScan.components !== frame.components || firstScan.dataEnd === undefined) return undefined;
  // What jpeg_finish_decompress reads.
  let codeAt = firstScan.dataEnd;
  for (;;) {
    if (bytes[codeAt] === EOI) return undefined;
    const next = readMarker(bytes, codeAt);
    if (next === SUSPENDED) return undefined;
    if (typeof next === 'string') return next;
    codeAt = nextMarkerCode(bytes, next);
    if (codeAt < 0) return undefined;
  }
}
