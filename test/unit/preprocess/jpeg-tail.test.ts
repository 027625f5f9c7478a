import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspectJpegScans } from '../../../src/preprocess/jpeg-scans.js';
import { findJpegTailError as findTail } from '../../../src/preprocess/jpeg-tail.js';
import { FIXTURES } from '../../helpers.js';
import { fixtureInput, haveShared, sharedDir } from './support.js';

const CORPUS = join(FIXTURES, 'decode-verdicts');
interface Case {
  file: string;
  base: string;
  damage: string;
  signature: string | null;
  pil: 'accepted' | 'refused';
  message?: string;
}
const cases = (JSON.parse(readFileSync(join(CORPUS, 'verdicts.json'), 'utf8')) as { cases: Case[] }).cases;
const read = (file: string) => new Uint8Array(readFileSync(join(CORPUS, 'files', file)));
/** As the preprocessor calls it: after the walk that counts the scans. */
const findJpegTailError = (bytes: Uint8Array) => findTail(bytes, inspectJpegScans(bytes));

describe('findJpegTailError', () => {
  it("finds an error exactly where Pillow's decode meets one after a one-scan JPEG's data", () => {
    // Segments between the scan and EOI, and markers written inside the scan: nothing else is
    // wrong with these files, so Pillow refuses them for what follows the image data or not at all.
    const tails = cases.filter((c) => c.base !== 'jpeg-progressive' && /^(tail|marker)-/.test(c.damage));
    assert.ok(tails.length >= 25, `${tails.length} files`);
    for (const c of tails) {
      const error = findJpegTailError(read(c.file));
      assert.equal(error !== undefined, c.pil === 'refused', `${c.file}: found ${error ?? 'nothing'}; Pillow ${c.pil} ${c.message ?? ''}`);
    }
    assert.equal(findJpegTailError(read('jpeg-cifar.tail-sof.jpg')), 'a second SOF marker');
    assert.equal(findJpegTailError(read('jpeg-cifar.tail-dht-bad-index.jpg')), 'a bogus DHT index 5');
    assert.equal(findJpegTailError(read('jpeg-cifar.tail-unknown-marker.jpg')), 'an unknown marker 0x2');
  });

  it('says nothing where libjpeg would suspend: the bytes end inside a segment after the scan', () => {
    const cut = cases.filter((c) => c.damage === 'tail-sof-cut' || c.damage === 'tail-com-cut');
    assert.equal(cut.length, 2);
    for (const c of cut) {
      assert.equal(c.pil, 'accepted', c.file);
      assert.equal(findJpegTailError(read(c.file)), undefined, c.file);
    }
  });

  it("starts where inspectJpegScans saw the scan's data end", () => {
    const intact = read('jpeg-cifar.intact.jpg');
    const { firstScan } = inspectJpegScans(intact);
    assert.equal(firstScan?.components, 3);
    assert.equal(firstScan?.dataEnd, intact.length - 1, 'the code byte of EOI');
    const marked = read('jpeg-cifar.marker-sof-in-data.jpg');
    const end = inspectJpegScans(marked).firstScan?.dataEnd ?? -1;
    assert.deepEqual([marked[end - 1], marked[end]], [0xff, 0xc0]);
  });

  it('leaves progressive JPEGs to libvips, which reads them to the end', () => {
    for (const c of cases.filter((x) => x.base === 'jpeg-progressive')) assert.equal(findJpegTailError(read(c.file)), undefined, c.file);
  });

  it('finds nothing in intact JPEGs, nor in those whose only damage libvips reports itself', () => {
    for (const c of cases.filter((x) => x.signature !== null && x.file.endsWith('.jpg') && !/^(tail|marker)-/.test(x.damage))) {
      assert.equal(findJpegTailError(read(c.file)), undefined, c.file);
    }
    for (const name of ['rgb.jpg', 'cmyk.jpg', 'grey.jpg', 'exif-orientation-6.jpg']) assert.equal(findJpegTailError(fixtureInput(name)), undefined, name);
  });

  it('finds nothing in the shared real JPEGs', { skip: haveShared ? false : '../shared is absent' }, () => {
    const dir = join(sharedDir, 'images', 'cifar10');
    const files = readdirSync(dir).filter((f) => f.endsWith('.jpg'));
    assert.ok(files.length > 0);
    for (const f of files) assert.equal(findJpegTailError(new Uint8Array(readFileSync(join(dir, f)))), undefined, f);
    assert.equal(findJpegTailError(new Uint8Array(readFileSync(join(sharedDir, 'images', 'photos', 'rocket.jpg')))), undefined);
  });
});
