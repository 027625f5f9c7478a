/**
 * Damaged images decided as the reference decides. Every file of the corpus in
 * test/fixtures/decode-verdicts/ (made once by scripts/fixtures/decode-verdicts.py, with
 * Pillow's verdict for each) is posted to the server, which must answer as torchvision's
 * loader would: Pillow accepted → 200 and a prediction; Pillow refused → 400 INVALID_IMAGE,
 * or 415 UNSUPPORTED_MEDIA_TYPE where the magic numbers name no accepted format (Pillow's
 * "cannot identify image file": the format is not even recognised). Where libvips has no
 * option that expresses Pillow's rule, the server's answer is listed below with the reason,
 * and asserted: a change in either direction fails until the list and docs/security.md's
 * input policy are brought up to date. Needs no Pillow: the verdicts are committed.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import request from 'supertest';
import { FIXTURES, resnet20App } from '../helpers.js';

const CORPUS = join(FIXTURES, 'decode-verdicts');

interface Case {
  readonly file: string;
  readonly base: string;
  readonly damage: string;
  /** The format the magic numbers say (jpeg, png, gif, webp, tiff), or null for none. */
  readonly signature: string | null;
  readonly pil: 'accepted' | 'refused';
  readonly exception?: string;
  readonly message?: string;
}

interface Verdicts {
  readonly versions: { readonly pillow: string };
  readonly cases: readonly Case[];
}

interface Answer {
  readonly status: number;
  readonly code?: string;
}

/**
 * Files where the server cannot answer as Pillow does, with the server's answer and why
 * (docs/security.md, "Input policy", says the same for users).
 */
const DISAGREEMENTS: Readonly<Record<string, Answer & { readonly why: string }>> = {
  'png.flip-idat-length.png': {
    status: 400,
    code: 'INVALID_IMAGE',
    why: "The IDAT chunk's length claims more bytes than the file holds. Pillow stops reading once zlib's stream ends, before the bytes that are missing, so it decodes every pixel; libpng reads the chunk whole and fails at every failOn level but 'none', which would accept truncated PNGs too.",
  },
  'tiff-raw.flip-ifd-count.tif': {
    status: 400,
    code: 'INVALID_IMAGE',
    why: "The IFD's entry count is inflated, so bytes past the IFD are read as tags. Pillow's own TIFF parser skips tags it cannot use; libtiff reports them as errors, which failOn 'error' refuses. Only 'truncated' would accept it, and that level would also accept TIFFs with a bad compression, strip offset or strip data, which Pillow refuses (twelve files of this corpus).",
  },
};

function expected(c: Case): Answer {
  if (c.pil === 'accepted') return { status: 200 };
  return c.signature === null ? { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' } : { status: 400, code: 'INVALID_IMAGE' };
}

const same = (a: Answer, b: Answer) => a.status === b.status && a.code === b.code;

async function loadVerdicts(): Promise<Verdicts> {
  return JSON.parse(await readFile(join(CORPUS, 'verdicts.json'), 'utf8')) as Verdicts;
}

describe('decode errors as Pillow decides them', () => {
  it('the corpus covers every format and kind of damage, with intact controls', async () => {
    const { cases, versions } = await loadVerdicts();
    assert.match(versions.pillow, /^\d+\.\d+/);
    const bases = new Set(cases.map((c) => c.base));
    assert.deepEqual([...bases].sort(), [
      'gif',
      'jpeg-baseline',
      'jpeg-cifar',
      'jpeg-progressive',
      'png',
      'tiff-deflate',
      'tiff-raw',
      'webp-lossless',
      'webp-lossy',
    ]);
    for (const base of bases) {
      const of = cases.filter((c) => c.base === base);
      assert.equal(of.find((c) => c.damage === 'intact')?.pil, 'accepted', `${base}: the intact control`);
      for (const kind of [/^truncated-/, /^flip-(?!data)/, /^(flip|scramble)-data-/]) {
        assert.ok(of.filter((c) => kind.test(c.damage)).length >= 3, `${base}: at least 3 files damaged as ${kind}`);
      }
      assert.ok(
        of.some((c) => c.pil === 'refused' && c.signature !== null),
        `${base}: some refusal by a decoder, not by the magic numbers`,
      );
    }
  });

  it('the listed disagreements are files of the corpus where the listed answer is not the reference', async () => {
    const { cases } = await loadVerdicts();
    for (const [file, answer] of Object.entries(DISAGREEMENTS)) {
      const c = cases.find((x) => x.file === file);
      assert.ok(c, `${file} is not in the corpus`);
      assert.ok(!same(answer, expected(c)), `${file}: listed as a disagreement, but ${answer.status} is what Pillow's verdict asks for`);
    }
  });

  it('answers every file as Pillow decided it, but for the listed disagreements', async (t) => {
    const { cases } = await loadVerdicts();
    const app = await resnet20App(t);
    const wrong: string[] = [];
    let agreed = 0;
    for (const c of cases) {
      const bytes = await readFile(join(CORPUS, 'files', c.file));
      const res = await request(app.server).post('/v1/predict').set('Content-Type', 'application/octet-stream').send(bytes);
      const got: Answer = res.status === 200 ? { status: 200 } : { status: res.status, code: (res.body as { code?: string }).code };
      if (res.status === 200) assert.ok(Array.isArray((res.body as { predictions?: unknown }).predictions), `${c.file}: a 200 without predictions`);
      const reference = expected(c);
      const listed = DISAGREEMENTS[c.file];
      const want = listed ?? reference;
      if (same(got, reference)) agreed++;
      if (!same(got, want)) {
        const pil = c.pil === 'accepted' ? 'accepted' : `refused (${c.exception}: ${c.message})`;
        wrong.push(
          `${c.file}: got ${got.status} ${got.code ?? ''}, want ${want.status} ${want.code ?? ''}${listed ? ' (listed disagreement)' : ''}; Pillow ${pil}; server said ${res.text.slice(0, 160)}`,
        );
      }
    }
    assert.deepEqual(wrong, [], `${wrong.length} of ${cases.length} files answered unlike the reference or the list:\n${wrong.join('\n')}`);
    assert.equal(agreed, cases.length - Object.keys(DISAGREEMENTS).length);
  });
});
