/**
 * A seeded, bounded fuzz of the HTTP surface with the trained ResNet-20: real images mutated
 * (truncation, bit flips, wrong magic numbers, forged huge dimensions, zero and random bytes)
 * and sent through every input form (raw body, multipart, v1 base64 JSON, v2 BYTES), then
 * malformed multipart written byte for byte on raw sockets, then malformed JSON. Every answer
 * must be a catalog error with a 4xx status (or, for a mutation that leaves a decodable image,
 * a real prediction): never a 5xx, never a hang. Afterwards the server still names the cat.
 *
 * The seed is fixed, so a failure reproduces exactly; FUZZ_SEED overrides it to explore.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createRandom } from '../../src/model-tools/prng.js';
import { CIFAR_DIR, FIXTURES, photo, resnet20App } from '../helpers.js';
import { forgeGifSize, forgeJpegSize, forgePngSize } from '../unit/preprocess/support.js';
import { assertCatalogError, assertClientError, exchange, inParallel, listen, multipartBody, rawPost, send, type Answer } from './hostile-support.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_240_607);
const IMAGE_CASES = 240;
const MULTIPART_CASES = 60;
const JSON_CASES = 160;
const IN_FLIGHT = 8;

function createFuzz(seed: number) {
  const random = createRandom(seed >>> 0);
  const int = (n: number) => Math.floor(random.uniform() * n);
  const between = (lo: number, hi: number) => lo + int(hi - lo + 1);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  return { int, between, pick, bytes, chance: (p: number) => random.uniform() < p };
}
type Fuzz = ReturnType<typeof createFuzz>;

type Format = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff';
interface Seed {
  readonly format: Format;
  readonly bytes: Buffer;
}

/** `refused`: must be a 4xx; `any`: a 4xx or a real prediction (the mutation may leave a valid image). */
type Expectation = { readonly kind: 'refused'; readonly code?: string } | { readonly kind: 'any' };
interface Mutant {
  readonly what: string;
  readonly bytes: Buffer;
  readonly expect: Expectation;
}

const MAGIC: Record<Format, Buffer> = {
  jpeg: Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
  png: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  gif: Buffer.from('GIF89a'),
  webp: Buffer.from('RIFF\0\0\0\0WEBP'),
  tiff: Buffer.from([0x49, 0x49, 0x2a, 0x00]),
};

function mutate(f: Fuzz, seed: Seed): Mutant {
  const src = seed.bytes;
  const kinds = ['truncate-header', 'truncate', 'bit-flips', 'wrong-magic', 'forged-size', 'zeros', 'random', 'splice', 'prefix'] as const;
  const kind = f.pick(kinds);
  const what = `${kind} of ${seed.format}`;
  switch (kind) {
    case 'truncate-header':
      return { what, bytes: src.subarray(0, f.between(1, 24)), expect: { kind: 'refused' } };
    case 'truncate':
      return { what, bytes: src.subarray(0, Math.floor(src.length * (0.1 + (0.85 * f.int(1000)) / 1000))), expect: { kind: 'any' } };
    case 'bit-flips': {
      const out = Buffer.from(src);
      for (let n = f.between(1, 24); n > 0; n--) {
        const at = f.int(out.length);
        out[at] = out[at]! ^ (1 << f.int(8));
      }
      return { what, bytes: out, expect: { kind: 'any' } };
    }
    case 'wrong-magic': {
      const other = f.pick((Object.keys(MAGIC) as Format[]).filter((k) => k !== seed.format));
      const magic = f.chance(0.7) ? MAGIC[other] : f.bytes(8);
      return { what: `${what} → ${other}`, bytes: Buffer.concat([magic, src.subarray(magic.length)]), expect: { kind: 'refused' } };
    }
    case 'forged-size':
      // libpng refuses sides over a million outright, and JPEG stores at most 65500.
      if (seed.format === 'png')
        return {
          what,
          bytes: forgePngSize(src, f.between(10_000, 1_000_000), f.between(10_000, 1_000_000)),
          expect: { kind: 'refused', code: 'IMAGE_TOO_LARGE' },
        };
      if (seed.format === 'jpeg')
        return { what, bytes: forgeJpegSize(src, f.between(10_000, 65_500), f.between(10_000, 65_500)), expect: { kind: 'refused', code: 'IMAGE_TOO_LARGE' } };
      if (seed.format === 'gif')
        return { what, bytes: forgeGifSize(src, f.between(10_000, 65_535), f.between(10_000, 65_535)), expect: { kind: 'refused', code: 'IMAGE_TOO_LARGE' } };
      return { what: `random bytes (no forger for ${seed.format})`, bytes: f.bytes(f.between(1, 4096)), expect: { kind: 'refused' } };
    case 'zeros':
      return { what: 'zero bytes', bytes: Buffer.alloc(f.int(4097)), expect: { kind: 'refused' } };
    case 'random':
      return { what: 'random bytes', bytes: f.bytes(f.between(1, 4096)), expect: { kind: 'refused' } };
    case 'splice': {
      const at = f.int(src.length);
      return { what, bytes: Buffer.concat([src.subarray(0, at), f.bytes(f.between(1, 256)), src.subarray(at)]), expect: { kind: 'any' } };
    }
    case 'prefix':
      // A non-image byte first: whatever follows, the magic numbers are gone.
      return { what, bytes: Buffer.concat([Buffer.from([f.pick([0x00, 0x20, 0x3c, 0x7b, 0xef])]), f.bytes(f.int(16)), src]), expect: { kind: 'refused' } };
  }
}

type Form = 'raw' | 'multipart' | 'v1-json' | 'v2-bytes';
const FORMS: readonly Form[] = ['raw', 'multipart', 'v1-json', 'v2-bytes'];

function sendImage(port: number, f: Fuzz, form: Form, bytes: Buffer): Promise<Answer> {
  switch (form) {
    case 'raw':
      // The Content-Type says nothing true: the format is judged from the bytes.
      return send(port, {
        method: 'POST',
        path: '/v1/models/resnet20:predict',
        headers: { 'Content-Type': f.pick(['image/png', 'image/jpeg', 'image/svg+xml', 'application/octet-stream']) },
        body: bytes,
      });
    case 'multipart': {
      const body = multipartBody([
        { bytes, filename: f.pick(['cat.png', 'x.svg', 'a.pdf', '../../etc/passwd']), type: f.pick(['image/png', 'image/svg+xml', 'application/pdf']) },
      ]);
      return send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' }, body });
    }
    case 'v1-json':
      return send(port, {
        method: 'POST',
        path: '/v1/models/resnet20:predict',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ instances: [{ b64: bytes.toString('base64') }] }),
      });
    case 'v2-bytes':
      return send(port, {
        method: 'POST',
        path: '/v2/models/resnet20/infer',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [bytes.toString('base64')] }] }),
      });
  }
}

/** A 200 must be a real answer for one image, in the form's own shape. */
function assertPrediction(answer: Answer, form: Form, what: string): void {
  const body = JSON.parse(answer.text) as { predictions?: Array<{ label: string }>; outputs?: Array<{ shape: number[] }> };
  if (form === 'v2-bytes') assert.deepEqual(body.outputs?.[0]?.shape, [1, 10], what);
  else assert.equal(typeof body.predictions?.[0]?.label, 'string', what);
}

// ---- Malformed multipart, written by hand -------------------------------------------------

interface RawCase {
  readonly what: string;
  readonly request: Buffer;
  readonly expect: Expectation;
}

function malformedMultipart(f: Fuzz, image: Buffer): RawCase {
  const b = 'fuzz-boundary-' + f.int(1e6);
  const type = `multipart/form-data; boundary=${b}`;
  const disposition = 'Content-Disposition: form-data; name="file"; filename="cat.jpg"';
  const good = (boundary = b, headers = `${disposition}\r\nContent-Type: image/jpeg`) =>
    Buffer.concat([Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`), image, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  const post = (what: string, contentType: string, body: Buffer, expect: Expectation = { kind: 'refused' }): RawCase => ({
    what,
    request: rawPost(f.pick(['/v1/predict', '/v1/models/resnet20:predict']), contentType, body),
    expect,
  });
  const variants: Array<() => RawCase> = [
    () => post('boundary in the header differs from the body', type, good('other-' + b)),
    () => post('no boundary parameter', 'multipart/form-data', good()),
    () => post('empty boundary parameter', 'multipart/form-data; boundary=', good()),
    // The Content-Type parser reads an unterminated quoted value to the end of the header.
    () => post('unterminated quoted boundary', `multipart/form-data; boundary="${b}`, good(), { kind: 'any' }),
    () => post('boundary of 2000 characters', `multipart/form-data; boundary=${'x'.repeat(2000)}`, good('x'.repeat(2000))),
    () => {
      // Cut anywhere before the closing boundary: the part never ends.
      const body = good();
      return post('unterminated part', type, body.subarray(0, f.between(1, body.length - `\r\n--${b}--\r\n`.length)));
    },
    () =>
      post(
        'no CRLF between the part headers and the data',
        type,
        Buffer.concat([Buffer.from(`--${b}\r\n${disposition}\r\n`), image, Buffer.from(`\r\n--${b}--\r\n`)]),
      ),
    () =>
      post('no CRLF before the closing boundary', type, Buffer.concat([Buffer.from(`--${b}\r\n${disposition}\r\n\r\n`), image, Buffer.from(`--${b}--\r\n`)])),
    // busboy skips what follows a boundary up to the line's end (RFC 2046 transport padding),
    // so this reads as a part without headers whose data is the intact image.
    () =>
      post('no CRLF after the opening boundary', type, Buffer.concat([Buffer.from(`--${b}${disposition}\r\n\r\n`), image, Buffer.from(`\r\n--${b}--\r\n`)]), {
        kind: 'any',
      }),
    () => post('bare LF line endings throughout', type, Buffer.concat([Buffer.from(`--${b}\n${disposition}\n\n`), image, Buffer.from(`\n--${b}--\n`)])),
    // busboy keeps the first 16 KiB of a part's headers (multipartLimits' headerSize) and drops
    // the rest, so memory stays bounded; the image after them is intact and may be classified.
    () =>
      post('a part header line of 100 KiB', type, good(b, `Content-Disposition: form-data; name="file"; filename="${'A'.repeat(100 * 1024)}.jpg"`), {
        kind: 'any',
      }),
    () => post('a part header without a colon, 40 KiB long', type, good(b, `${disposition}\r\n${'X'.repeat(40 * 1024)}`), { kind: 'any' }),
    () => post('a part without Content-Disposition', type, good(b, 'Content-Type: image/jpeg')),
    () =>
      post(
        'random bytes as part headers',
        type,
        good(
          b,
          f
            .bytes(f.between(1, 512))
            .toString('latin1')
            .replace(/\r\n\r\n/g, '--'),
        ),
      ),
    () => post('random bytes as the whole body', type, f.bytes(f.between(1, 4096))),
    () => post('an empty body', type, Buffer.alloc(0)),
    () => post('only the closing boundary', type, Buffer.from(`--${b}--\r\n`)),
    () =>
      post(
        '200 fields and no file',
        type,
        Buffer.concat([
          ...Array.from({ length: 200 }, (_, i) => Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nv\r\n`)),
          Buffer.from(`--${b}--\r\n`),
        ]),
      ),
    () => post('a forbidden field name', type, good(b, 'Content-Disposition: form-data; name="__proto__"; filename="x.jpg"')),
    // A body that is perfectly framed but whose image is a broken one.
    () =>
      post(
        'a well-formed body around random bytes',
        type,
        Buffer.concat([Buffer.from(`--${b}\r\n${disposition}\r\n\r\n`), f.bytes(f.between(1, 2048)), Buffer.from(`\r\n--${b}--\r\n`)]),
      ),
    () => post('a multipart/mixed Content-Type', `multipart/mixed; boundary=${b}`, good(), { kind: 'any' }),
  ];
  return f.pick(variants)();
}

// ---- Malformed JSON -------------------------------------------------------------------------

function randomJson(f: Fuzz, depth: number): unknown {
  const leaves: Array<() => unknown> = [
    () => null,
    () => f.chance(0.5),
    () => f.int(2 ** 31) - 2 ** 30,
    () => f.pick([-1, 0, 1, 3, 32, 1e308, -1e308, 2 ** 53 + 1, 0.5, -0.0]),
    () => f.bytes(f.int(64)).toString('base64'),
    () => f.pick(['', 'FP32', 'BYTES', 'input', 'image', '\u0000', '..', '%PDF-1.7', '<svg/>', 'A'.repeat(f.int(5000))]),
  ];
  if (depth <= 0 || f.chance(0.5)) return f.pick(leaves)();
  if (f.chance(0.5)) return Array.from({ length: f.int(6) }, () => randomJson(f, depth - 1));
  return Object.fromEntries(
    Array.from({ length: f.int(5) }, () => [
      f.pick(['b64', 'instances', 'inputs', 'shape', 'data', 'name', 'datatype', 'id', '__proto__', 'constructor']),
      randomJson(f, depth - 1),
    ]),
  );
}

const nest = (depth: number, open: string, close: string, inner: string) => open.repeat(depth) + inner + close.repeat(depth);

function malformedJson(f: Fuzz): { what: string; path: string; body: Buffer } {
  const v1 = '/v1/models/resnet20:predict';
  const v2 = '/v2/models/resnet20/infer';
  const depth = f.pick([64, 10_000, 500_000]);
  const valid = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: new Array(3072).fill(0.5) }] });
  const variants: Array<() => { what: string; path: string; body: string | Buffer }> = [
    () => ({ what: `instances nested ${depth} deep`, path: v1, body: `{"instances":${nest(depth, '[', ']', '1')}}` }),
    () => ({
      what: `tensor data nested ${depth} deep`,
      path: v2,
      body: `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":${nest(depth, '[', ']', '0.5')}}]}`,
    }),
    () => ({
      what: `BYTES data nested ${depth} deep`,
      path: v2,
      body: `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":${nest(depth, '[', ']', '"AAAA"')}}]}`,
    }),
    () => ({
      what: `shape nested ${depth} deep`,
      path: v2,
      body: `{"inputs":[{"name":"input","shape":${nest(depth, '[', ']', '1')},"datatype":"FP32","data":[]}]}`,
    }),
    () => ({ what: `objects nested ${depth} deep`, path: f.pick([v1, v2]), body: nest(depth, '{"a":', '}', '1') }),
    () => ({
      what: 'huge numbers in the shape',
      path: v2,
      body: `{"inputs":[{"name":"input","shape":[${f.pick(['1e400', '-1e400', '123456789012345678901234567890', '9007199254740993', '1.5', '-1'])},3,32,32],"datatype":"FP32","data":[1]}]}`,
    }),
    () => ({
      what: 'huge numbers in the data',
      path: v2,
      body: `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":[${new Array(3072).fill(f.pick(['1e400', '-1e999', '1e39', '-3.4e38', '3e38'])).join(',')}]}]}`,
    }),
    () => ({ what: 'a billion items claimed', path: v2, body: `{"inputs":[{"name":"input","shape":[1000000000,3,32,32],"datatype":"FP32","data":[1]}]}` }),
    () => ({
      what: 'invalid UTF-8 in a string',
      path: f.pick([v1, v2]),
      body: Buffer.concat([Buffer.from('{"instances":[{"b64":"'), f.bytes(16).map((x) => x | 0x80), Buffer.from('"}]}')]),
    }),
    () => ({ what: 'invalid UTF-8 in a key', path: v2, body: Buffer.concat([Buffer.from('{"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('":1}')]) }),
    () => ({ what: 'a valid request cut short', path: v2, body: valid.slice(0, f.between(1, valid.length - 1)) }),
    () => ({ what: 'random bytes', path: f.pick([v1, v2]), body: f.bytes(f.between(1, 2048)) }),
    () => ({ what: 'a bare JSON scalar', path: f.pick([v1, v2]), body: f.pick(['null', '42', '"x"', 'true', '[]', '{}', 'NaN', '']) }),
    () => ({ what: 'a prototype-poisoning key', path: f.pick([v1, v2]), body: '{"__proto__":{"instances":[]},"constructor":{"prototype":{"x":1}}}' }),
    () => ({ what: 'random values in the v1 body', path: v1, body: JSON.stringify({ instances: randomJson(f, 4) }) }),
    () => ({ what: 'random values in an instance', path: v1, body: JSON.stringify({ instances: [{ b64: randomJson(f, 3), image_bytes: randomJson(f, 2) }] }) }),
    () => ({
      what: 'random values in the v2 input',
      path: v2,
      body: JSON.stringify({
        id: randomJson(f, 1),
        inputs: [{ name: randomJson(f, 1), shape: randomJson(f, 2), datatype: f.pick(['FP32', 'BYTES', randomJson(f, 1)]), data: randomJson(f, 3) }],
      }),
    }),
    () => ({ what: 'a random body', path: f.pick([v1, v2]), body: JSON.stringify(randomJson(f, 5)) ?? 'null' }),
  ];
  const c = f.pick(variants)();
  return { ...c, body: Buffer.isBuffer(c.body) ? c.body : Buffer.from(c.body) };
}

async function loadSeeds(): Promise<Seed[]> {
  const inputs = join(FIXTURES, 'preprocess', 'inputs');
  return [
    { format: 'jpeg', bytes: await readFile(join(CIFAR_DIR, 'cat_0000.jpg')) },
    { format: 'jpeg', bytes: await readFile(join(inputs, 'rgb.jpg')) },
    { format: 'png', bytes: await readFile(join(inputs, 'rgb.png')) },
    { format: 'png', bytes: await readFile(join(inputs, 'palette-transparent.png')) },
    { format: 'gif', bytes: await readFile(join(inputs, 'animated.gif')) },
    { format: 'webp', bytes: await readFile(join(inputs, 'lossy.webp')) },
    { format: 'tiff', bytes: await readFile(join(inputs, 'deflate.tiff')) },
  ];
}

describe(`fuzz (seed ${SEED})`, () => {
  it('answers every mutated image, malformed multipart and malformed JSON with a 4xx from the catalog, then still names the cat', async (t) => {
    const app = await resnet20App(t, { QUEUE_MAX_SIZE: '256' });
    const port = await listen(app);
    const seeds = await loadSeeds();
    const f = createFuzz(SEED);
    const tally = new Map<string, number>();
    const count = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);

    const imageTasks = Array.from({ length: IMAGE_CASES }, (_, i) => {
      const form = FORMS[i % FORMS.length]!;
      const mutant = mutate(f, f.pick(seeds));
      const bytes = mutant.bytes;
      const fo = createFuzz(SEED + i); // per-request choices, independent of completion order
      return async () => {
        const what = `#${i} ${mutant.what} (${bytes.length} bytes) via ${form}`;
        const answer = await sendImage(port, fo, form, bytes);
        if (answer.status === 200 && mutant.expect.kind === 'any') {
          assertPrediction(answer, form, what);
          count('200 (still a valid image)');
          return;
        }
        const code = assertClientError(answer, what);
        if (mutant.expect.kind === 'refused' && mutant.expect.code !== undefined) assert.equal(code, mutant.expect.code, what);
        count(code);
      };
    });
    await inParallel(imageTasks, IN_FLIGHT);

    const image = await readFile(join(CIFAR_DIR, 'cat_0001.jpg'));
    const multipartTasks = Array.from({ length: MULTIPART_CASES }, (_, i) => {
      const c = malformedMultipart(f, image);
      return async () => {
        const what = `multipart #${i}: ${c.what}`;
        const { answer, closed } = await exchange(port, [c.request], { untilAnswer: true });
        assert.ok(answer, `no answer (closed: ${closed}): ${what}`);
        if (answer.status === 200 && c.expect.kind === 'any') {
          count('200 (multipart accepted)');
          return;
        }
        count(assertClientError(answer, what));
      };
    });
    await inParallel(multipartTasks, IN_FLIGHT);

    const jsonTasks = Array.from({ length: JSON_CASES }, (_, i) => {
      const c = malformedJson(f);
      return async () => {
        const what = `json #${i}: ${c.what} → ${c.path}`;
        count(assertClientError(await send(port, { method: 'POST', path: c.path, headers: { 'Content-Type': 'application/json' }, body: c.body }), what));
      };
    });
    await inParallel(jsonTasks, IN_FLIGHT);

    t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries([...tally].sort()))}`);
    const refused = [...tally].filter(([k]) => !k.startsWith('200')).reduce((a, [, n]) => a + n, 0);
    assert.ok(refused >= 0.8 * (IMAGE_CASES + MULTIPART_CASES + JSON_CASES), `only ${refused} refusals: the fuzz is not hostile enough`);
    for (const code of ['INVALID_IMAGE', 'UNSUPPORTED_MEDIA_TYPE', 'IMAGE_TOO_LARGE', 'INVALID_REQUEST', 'INVALID_JSON', 'INVALID_TENSOR', 'INVALID_BASE64']) {
      assert.ok((tally.get(code) ?? 0) > 0, `no case exercised ${code}`);
    }

    const chelsea = await photo('chelsea.png');
    const after = await send(port, { method: 'POST', path: '/v1/models/resnet20:predict', headers: { 'Content-Type': 'image/png' }, body: chelsea });
    assert.equal(after.status, 200, after.text);
    assert.equal((JSON.parse(after.text) as { predictions: Array<{ label: string }> }).predictions[0]!.label, 'cat');
    const viaMultipart = await send(port, {
      method: 'POST',
      path: '/v1/predict',
      headers: { 'Content-Type': 'multipart/form-data; boundary=hostile-boundary-7' },
      body: multipartBody([{ bytes: chelsea }]),
    });
    assert.equal((JSON.parse(viaMultipart.text) as { predictions: Array<{ label: string }> }).predictions[0]!.label, 'cat');
    assertCatalogError(await send(port, { path: '/v2/models/none' }), { status: 404, code: 'MODEL_NOT_FOUND' });
  });
});
