/**
 * The JPEG walk against real files (the fixtures, a shared photo, what sharp encodes), against
 * the scan bomb, and against bytes built to hit each of libjpeg's reading rules. Where a rule
 * could be got wrong in a way that still looks plausible, libjpeg itself (through sharp) is
 * asked to decode the same bytes, so the walk is checked against the decoder, not against
 * itself. Nothing here is timed: "stops early" is shown by where the walk stopped.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import sharp, { type JpegOptions } from 'sharp';
import { maxValidScans, progressiveJpegScanBomb } from '../../../bench/lib/hostile-images.js';
import { isServingError } from '../../../src/errors.js';
import { createRandom } from '../../../src/model-tools/prng.js';
import { coefficientBufferBytes, inspectJpegScans, MAX_JPEG_SCANS, type JpegScanReport } from '../../../src/preprocess/jpeg-scans.js';
import { createSharpDecoder } from '../../../src/preprocess/sharp-pipeline.js';
import { fixtureInput, sharedDir } from './support.js';

const WIDTH = 96;
const HEIGHT = 64;

/** Seeded noise over a gradient: detail enough for real progressions, and plenty of 0xFF bytes at quality 100. */
function noisyRgb(): Buffer {
  const random = createRandom(11);
  const pixels = Buffer.alloc(WIDTH * HEIGHT * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i % 256) ^ Math.floor(random.uniform() * 256);
  return pixels;
}

type Colour = 'srgb' | 'b-w' | 'cmyk';

function encode(colour: Colour, options: JpegOptions): Promise<Buffer> {
  return sharp(noisyRgb(), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .toColourspace(colour)
    .jpeg(options)
    .toBuffer();
}

function decodeRaw(bytes: Uint8Array): Promise<Buffer> {
  return sharp(bytes, { failOn: 'error' }).raw().toBuffer();
}

const concat = (...parts: Array<readonly number[] | Uint8Array>) => Buffer.concat(parts.map((p) => Buffer.from(p)));

/** Positions of every `FF code` pair: in sharp's output (no metadata) these are the markers themselves. */
function markerPositions(bytes: Uint8Array, code: number): number[] {
  const at: number[] = [];
  for (let i = 0; i + 1 < bytes.length; i++) if (bytes[i] === 0xff && bytes[i + 1] === code) at.push(i);
  return at;
}

/** `bytes` with `insert` put before each of `positions`. */
function insertBefore(bytes: Uint8Array, positions: readonly number[], insert: readonly number[]): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of positions) {
    parts.push(Buffer.from(bytes.subarray(from, p)), Buffer.from(insert));
    from = p;
  }
  parts.push(Buffer.from(bytes.subarray(from)));
  return Buffer.concat(parts);
}

async function assertAgreesWithSharp(bytes: Uint8Array, report: JpegScanReport, what: string): Promise<void> {
  const meta = await sharp(bytes).metadata();
  assert.equal(report.end, 'eoi', what);
  assert.equal(report.progressive, meta.isProgressive, `${what}: progressive`);
  assert.equal(report.frame?.width, meta.width, `${what}: width`);
  assert.equal(report.frame?.height, meta.height, `${what}: height`);
  assert.equal(report.frame?.components, meta.channels, `${what}: components`);
}

describe('inspectJpegScans on real files', () => {
  for (const name of ['rgb.jpg', 'grey.jpg', 'cmyk.jpg', 'large.jpg', 'exif-orientation-6.jpg']) {
    it(`finds the one scan and the frame of the baseline fixture ${name}`, async () => {
      const bytes = fixtureInput(name);
      const report = inspectJpegScans(bytes);
      assert.equal(report.scans, 1);
      assert.equal(report.frame?.marker, 0xc0);
      assert.equal(report.exceedsMaxScans, false);
      await assertAgreesWithSharp(bytes, report, name);
      assert.equal(report.bytesWalked, bytes.length); // EOI is the last thing in these files
    });
  }

  const rocket = join(sharedDir, 'images', 'photos', 'rocket.jpg');
  it('finds the one scan and the frame of the shared photo rocket.jpg', { skip: existsSync(rocket) ? false : `${rocket} is not present` }, async () => {
    const bytes = readFileSync(rocket);
    const report = inspectJpegScans(bytes);
    assert.equal(report.scans, 1);
    assert.deepEqual([report.frame?.width, report.frame?.height], [640, 427]);
    await assertAgreesWithSharp(bytes, report, 'rocket.jpg');
  });

  // libjpeg's jpeg_simple_progression: 10 scans for YCbCr, 6 for one component, 2 + 4n for n others.
  const encodings: Array<[string, Colour, JpegOptions, number | undefined]> = [
    ['baseline YCbCr', 'srgb', {}, 1],
    ['baseline CMYK', 'cmyk', {}, 1],
    ['progressive YCbCr', 'srgb', { progressive: true }, 10],
    ['progressive YCbCr 4:4:4, quality 100', 'srgb', { progressive: true, chromaSubsampling: '4:4:4', quality: 100 }, 10],
    ['progressive greyscale', 'b-w', { progressive: true }, 6],
    ['progressive CMYK', 'cmyk', { progressive: true }, 18],
    ['mozjpeg (scans searched)', 'srgb', { mozjpeg: true }, undefined],
    ['optimiseScans 4:4:4, quality 95', 'srgb', { optimiseScans: true, chromaSubsampling: '4:4:4', quality: 95 }, undefined],
    ['optimiseScans greyscale', 'b-w', { optimiseScans: true }, undefined],
  ];
  for (const [what, colour, options, expected] of encodings) {
    it(`counts the scans sharp writes: ${what}`, async () => {
      const bytes = await encode(colour, options);
      const report = inspectJpegScans(bytes);
      if (expected !== undefined) assert.equal(report.scans, expected);
      else assert.ok(report.progressive && report.scans > 1 && report.scans <= 12, `${report.scans} scans`);
      assert.equal(report.frame?.marker, report.progressive ? 0xc2 : 0xc0);
      await assertAgreesWithSharp(bytes, report, what);
    });
  }

  it('MAX_JPEG_SCANS is at least five times what any encoder here writes', async () => {
    const counts = await Promise.all(encodings.map(async ([, colour, options]) => inspectJpegScans(await encode(colour, options)).scans));
    assert.ok(5 * Math.max(...counts) <= MAX_JPEG_SCANS, `most scans ${Math.max(...counts)}, cap ${MAX_JPEG_SCANS}`);
  });
});

describe("inspectJpegScans follows libjpeg's reading rules", () => {
  it('walks over an EXIF thumbnail (a whole JPEG inside APP1) by its length', async () => {
    const image = await encode('srgb', { progressive: true });
    const thumbnail = await sharp(noisyRgb(), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
      .resize(24, 16)
      .jpeg()
      .toBuffer();
    const exif = concat([0x45, 0x78, 0x69, 0x66, 0, 0], thumbnail); // "Exif\0\0", then the thumbnail
    const app1 = concat([0xff, 0xe1, (exif.length + 2) >> 8, (exif.length + 2) & 0xff], exif);
    const bytes = concat(image.subarray(0, 2), app1, image.subarray(2));
    const report = inspectJpegScans(bytes);
    // A search for 0xFF 0xDA would count the thumbnail's scan, take its frame, and stop at its EOI.
    assert.equal(report.scans, 10);
    assert.deepEqual([report.frame?.width, report.frame?.height], [WIDTH, HEIGHT]);
    assert.deepEqual(await decodeRaw(bytes), await decodeRaw(image));
  });

  it('skips 0xFF fill bytes before markers, and stray bytes and 0xFF 0x00 between segments', async () => {
    const image = await encode('srgb', { progressive: true });
    // Fill bytes before every scan, the first and those that follow entropy-coded data.
    let bytes = insertBefore(image, markerPositions(image, 0xda), [0xff, 0xff, 0xff]);
    // Stray bytes before the frame header: libjpeg warns ("extraneous bytes") and goes on.
    bytes = insertBefore(bytes, markerPositions(bytes, 0xc2), [0x01, 0x02, 0xff, 0x00, 0x03]);
    const report = inspectJpegScans(bytes);
    assert.equal(report.scans, 10);
    assert.equal(report.end, 'eoi');
    assert.deepEqual([report.frame?.width, report.frame?.height], [WIDTH, HEIGHT]);
    assert.deepEqual(await decodeRaw(bytes), await decodeRaw(image), 'libjpeg reads the same image');
  });

  it('does not end a scan at a stuffed 0xFF 0x00 in real entropy-coded data', async () => {
    const bytes = await encode('srgb', { progressive: true, chromaSubsampling: '4:4:4', quality: 100 });
    assert.ok(markerPositions(bytes, 0x00).length > 50, 'the noise must give the data dozens of stuffed bytes');
    const report = inspectJpegScans(bytes);
    assert.equal(report.scans, 10);
    assert.equal(report.end, 'eoi');
  });

  it('passes over RST0–RST7, fill bytes and stuffed bytes inside a scan, and ends it at any other marker', () => {
    const sof = [0xff, 0xc2, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0];
    const sos = [0xff, 0xda, 0, 8, 1, 1, 0x00, 0, 0, 0];
    const data = [0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xff, 0x00, 0xff, 0xd7, 0xff, 0xff, 0xd3, 0x78];
    const dht = [0xff, 0xc4, 0, 3, 0x00]; // a (bogus) segment between scans ends the first one
    const bytes = concat([0xff, 0xd8], sof, sos, data, dht, sos, data, [0xff, 0xff, 0xff, 0xd9]);
    const report = inspectJpegScans(bytes);
    assert.equal(report.scans, 2);
    assert.equal(report.end, 'eoi');
    assert.equal(report.bytesWalked, bytes.length);
    assert.deepEqual(report.frame, { marker: 0xc2, precision: 8, width: 8, height: 8, components: 1, coefficientBlocks: 1 });
  });

  it('stops at the first EOI, as the decoder does', async () => {
    const image = await encode('srgb', { progressive: true });
    const report = inspectJpegScans(concat(image, image));
    assert.equal(report.scans, 10);
    assert.equal(report.bytesWalked, image.length);
  });

  it("sizes libjpeg's whole-image coefficient buffer from the sampling factors", async () => {
    // 96×64 at 4:2:0: Y 12×8 blocks; Cb and Cr 6×4 each. At 4:4:4: 12×8 for each of 3.
    const subsampled = inspectJpegScans(await encode('srgb', { progressive: true, chromaSubsampling: '4:2:0' })).frame;
    const full = inspectJpegScans(await encode('srgb', { progressive: true, chromaSubsampling: '4:4:4' })).frame;
    assert.ok(subsampled !== undefined && full !== undefined);
    assert.equal(subsampled.coefficientBlocks, 96 + 2 * 24);
    assert.equal(full.coefficientBlocks, 3 * 96);
    assert.equal(coefficientBufferBytes(full), 3 * 96 * 128);
    // Odd sizes round up to whole blocks, and to whole MCUs for the sampled component:
    // 100×60 at 4:2:0 is Y 13→14 × 8 blocks, and 7 × 4 for each chroma component.
    const odd = await sharp(noisyRgb(), { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
      .resize(100, 60, { fit: 'fill' })
      .jpeg({ progressive: true })
      .toBuffer();
    assert.equal(inspectJpegScans(odd).frame?.coefficientBlocks, 14 * 8 + 2 * 7 * 4);
  });
});

describe('inspectJpegScans against the progressive scan bomb', () => {
  const bomb = progressiveJpegScanBomb({ width: 256, height: 256, scans: 600 });

  it('stops at the scan after the cap, without walking the rest', () => {
    const report = inspectJpegScans(bomb, { maxScans: MAX_JPEG_SCANS });
    assert.equal(report.end, 'scan-limit');
    assert.equal(report.exceedsMaxScans, true);
    assert.equal(report.scans, MAX_JPEG_SCANS + 1);
    assert.ok(report.progressive);
    assert.ok(report.bytesWalked < bomb.length / 2, `walked ${report.bytesWalked} of ${bomb.length} bytes`);
  });

  it('counts every scan without a cap', () => {
    const report = inspectJpegScans(bomb);
    assert.deepEqual([report.end, report.scans, report.exceedsMaxScans], ['eoi', 600, false]);
  });

  it('accepts exactly maxScans scans and refuses one more', () => {
    const at = inspectJpegScans(progressiveJpegScanBomb({ width: 64, height: 64, scans: MAX_JPEG_SCANS }), { maxScans: MAX_JPEG_SCANS });
    assert.deepEqual([at.end, at.scans, at.exceedsMaxScans], ['eoi', MAX_JPEG_SCANS, false]);
    const over = inspectJpegScans(progressiveJpegScanBomb({ width: 64, height: 64, scans: MAX_JPEG_SCANS + 1 }), { maxScans: MAX_JPEG_SCANS });
    assert.deepEqual([over.end, over.scans, over.exceedsMaxScans], ['scan-limit', MAX_JPEG_SCANS + 1, true]);
    const none = inspectJpegScans(bomb, { maxScans: 0 });
    assert.deepEqual([none.end, none.scans], ['scan-limit', 1]);
    assert.ok(none.frame !== undefined, 'the frame comes before the first scan');
  });

  // The bomb is only worth guarding against if the server would decode it: its own decoder
  // (libvips, failOn: 'error') accepts a valid progression however long, and up to 99 repeated
  // scans beyond it (one libjpeg warning each), and refuses the file at the 100th warning.
  for (const components of [1, 3, 4] as const) {
    it(`is decoded by the server's decoder with ${components} component(s) and ${maxValidScans(components) + 99} scans`, async () => {
      const scans = maxValidScans(components) + 99;
      const bytes = progressiveJpegScanBomb({ width: 64, height: 48, scans, components });
      assert.equal(inspectJpegScans(bytes).scans, scans);
      const decoder = createSharpDecoder();
      const header = await decoder.readHeader(bytes, 'JPEG');
      assert.deepEqual([header.width, header.height], [64, 48]);
      const colour = components === 4 ? 'cmyk' : 'srgb';
      const pixels = await decoder.decode(
        { bytes, header, maxPixels: 40_000_000, resizeTo: undefined, region: { left: 0, top: 0, width: 8, height: 8 }, colour },
        'JPEG',
      );
      if (components !== 4)
        assert.ok(
          pixels.every((v) => v === 128),
          'flat mid-grey',
        );
    });
  }

  it("is refused by the server's decoder at libjpeg's 100th warning", async () => {
    const bytes = progressiveJpegScanBomb({ width: 64, height: 48, scans: maxValidScans(3) + 100 });
    const decoder = createSharpDecoder();
    const header = await decoder.readHeader(bytes, 'JPEG');
    await assert.rejects(
      decoder.decode({ bytes, header, maxPixels: 40_000_000, resizeTo: undefined, region: { left: 0, top: 0, width: 8, height: 8 }, colour: 'srgb' }, 'JPEG'),
      (error) => isServingError(error) && error.code === 'INVALID_IMAGE',
    );
  });

  it('makes the full-band variant, valid for 14 scans a component', () => {
    const bytes = progressiveJpegScanBomb({ width: 64, height: 64, scans: maxValidScans(3, 'full'), band: 'full' });
    assert.equal(maxValidScans(3, 'full'), 43);
    assert.equal(inspectJpegScans(bytes).scans, 43);
  });
});

describe('inspectJpegScans on cut, broken and foreign bytes', () => {
  it('reports every cut of a progressive JPEG as truncated, with the scans before the cut', async () => {
    const image = await encode('srgb', { progressive: true });
    const whole = inspectJpegScans(image);
    const sofEnd = (markerPositions(image, 0xc2)[0] as number) + 2 + image.readUInt16BE((markerPositions(image, 0xc2)[0] as number) + 2);
    let previous = 0;
    for (let length = 0; length < image.length; length++) {
      const report = inspectJpegScans(image.subarray(0, length));
      assert.equal(report.end, length < 2 ? 'not-jpeg' : 'truncated', `cut at ${length}`);
      assert.ok(report.scans >= previous && report.scans <= whole.scans, `cut at ${length}: ${report.scans} scans`);
      assert.equal(report.frame !== undefined, length >= sofEnd, `cut at ${length}: frame`);
      previous = report.scans;
    }
    assert.equal(previous, whole.scans, 'the last scan is seen before its data is complete');
  });

  it('says what is not a JPEG', () => {
    const notJpeg: Array<[string, Uint8Array]> = [
      ['nothing', new Uint8Array(0)],
      ['one 0xFF', Uint8Array.of(0xff)],
      ['EOI first', Uint8Array.of(0xff, 0xd9)],
      ['a PNG signature', Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)],
      ['GIF', new TextEncoder().encode('GIF89a')],
      ['SOI late', Uint8Array.of(0x00, 0xff, 0xd8, 0xff, 0xd9)],
    ];
    for (const [what, bytes] of notJpeg) {
      assert.deepEqual(
        inspectJpegScans(bytes),
        { end: 'not-jpeg', scans: 0, exceedsMaxScans: false, progressive: false, frame: undefined, bytesWalked: 0, firstScan: undefined },
        what,
      );
    }
    assert.equal(inspectJpegScans(Uint8Array.of(0xff, 0xd8)).end, 'truncated');
    assert.equal(inspectJpegScans(Uint8Array.of(0xff, 0xd8, 0xff, 0xd9)).end, 'eoi');
  });

  it('stops at a segment length below 2', () => {
    for (const length of [0, 1]) {
      const report = inspectJpegScans(Uint8Array.of(0xff, 0xd8, 0xff, 0xc4, 0, length, 0xff, 0xda, 0, 2, 0xff, 0xd9));
      assert.deepEqual([report.end, report.scans, report.bytesWalked], ['malformed', 0, 4]);
    }
  });

  it('never throws, and stays within the bytes, for seeded mutations of real JPEGs', async () => {
    const random = createRandom(2026);
    const pick = (n: number) => Math.floor(random.uniform() * n);
    const sources = [await encode('srgb', { progressive: true }), await encode('cmyk', {}), progressiveJpegScanBomb({ width: 40, height: 24, scans: 30 })];
    const specials = [0x00, 0xff, 0xd8, 0xd9, 0xda, 0xc2, 0xd0];
    for (let round = 0; round < 600; round++) {
      const bytes = Buffer.from(sources[round % sources.length] as Buffer);
      for (let k = 1 + pick(8); k > 0; k--) {
        const at = 2 + pick(bytes.length - 2);
        bytes[at] = random.uniform() < 0.5 ? (specials[pick(specials.length)] as number) : pick(256);
      }
      const cut = bytes.subarray(0, random.uniform() < 0.3 ? pick(bytes.length) : bytes.length);
      const report = inspectJpegScans(cut, { maxScans: round % 2 === 0 ? 5 : Number.POSITIVE_INFINITY });
      assert.ok(report.bytesWalked >= 0 && report.bytesWalked <= cut.length, `round ${round}`);
      if (round % 2 === 0) assert.ok(report.scans <= 6, `round ${round}: ${report.scans} scans past a cap of 5`);
    }
  });

  it('refuses a maxScans that is not a whole number from 0 up, saying what it got', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY, '3' as unknown as number]) {
      assert.throws(() => inspectJpegScans(Uint8Array.of(0xff, 0xd8), { maxScans: bad }), {
        name: 'RangeError',
        message: /Expected `maxScans` to be a whole number from 0 up or Infinity, got `/,
      });
    }
    assert.equal(inspectJpegScans(Uint8Array.of(0xff, 0xd8), { maxScans: Number.POSITIVE_INFINITY }).end, 'truncated');
  });
});
