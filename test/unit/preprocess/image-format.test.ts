import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectImageFormat } from '../../../src/preprocess/index.js';
import { fixtureInput } from './support.js';

const bytes = (...parts: Array<string | number[]>) => Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...p].map((c) => c.charCodeAt(0)) : p)));

/** An ISO-BMFF `ftyp` box with the given major and compatible brands. */
function ftyp(major: string, ...compatible: string[]): Uint8Array {
  const size = 16 + 4 * compatible.length;
  return bytes([0, 0, 0, size], 'ftyp', major, [0, 0, 0, 0], ...compatible, [0, 0, 0, 8], 'meta');
}

describe('detectImageFormat', () => {
  it('recognises each accepted format in real files', () => {
    const cases: Array<[string, string]> = [
      ['rgb.jpg', 'jpeg'],
      ['cmyk.jpg', 'jpeg'],
      ['rgb.png', 'png'],
      ['rgb16.png', 'png'],
      ['animated.gif', 'gif'],
      ['lossy.webp', 'webp'],
      ['lossless.webp', 'webp'],
      ['animated.webp', 'webp'],
      ['deflate.tiff', 'tiff'],
      ['lossless.avif', 'avif'],
    ];
    for (const [file, format] of cases) assert.equal(detectImageFormat(fixtureInput(file)), format, file);
  });

  it('recognises the signatures themselves', () => {
    assert.equal(detectImageFormat(bytes([0xff, 0xd8, 0xff])), 'jpeg');
    assert.equal(detectImageFormat(bytes([0x89], 'PNG', [0x0d, 0x0a, 0x1a, 0x0a])), 'png');
    assert.equal(detectImageFormat(bytes('GIF87a')), 'gif');
    assert.equal(detectImageFormat(bytes('GIF89a')), 'gif');
    assert.equal(detectImageFormat(bytes('RIFF', [1, 2, 3, 4], 'WEBPVP8 ')), 'webp');
    assert.equal(detectImageFormat(bytes('II', [0x2a, 0])), 'tiff');
    assert.equal(detectImageFormat(bytes('MM', [0, 0x2a])), 'tiff');
    assert.equal(detectImageFormat(bytes('II', [0x2b, 0])), 'tiff'); // BigTIFF
    assert.equal(detectImageFormat(ftyp('avif', 'mif1', 'miaf')), 'avif');
    assert.equal(detectImageFormat(ftyp('mif1', 'avif')), 'avif');
    assert.equal(detectImageFormat(ftyp('avis', 'msf1')), 'avif');
    assert.equal(detectImageFormat(ftyp('heic', 'mif1')), 'heif');
    assert.equal(detectImageFormat(ftyp('mif1', 'heic')), 'heif');
  });

  it('refuses everything else, including near misses', () => {
    const refused: Uint8Array[] = [
      new Uint8Array(0),
      bytes([0xff, 0xd8]), // JPEG SOI without a following marker
      bytes([0x89], 'PNG', [0x0d, 0x0a, 0x1a]), // PNG signature cut short
      bytes('GIF88a'),
      bytes('RIFF', [1, 2, 3, 4], 'WAVEfmt '),
      bytes('II', [0x2a, 1]),
      ftyp('isom', 'iso2', 'mp41'), // MP4 video
      ftyp('qt  '),
      bytes([0, 0, 0, 13], 'ftypavif'), // box size not a multiple of 4
      bytes('<svg xmlns="http://www.w3.org/2000/svg"/>'),
      bytes('%PDF-1.4'),
      bytes('BM'),
      bytes('hello'),
    ];
    for (const b of refused) assert.equal(detectImageFormat(b), undefined, JSON.stringify([...b.subarray(0, 12)]));
  });
});
