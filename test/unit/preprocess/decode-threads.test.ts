/**
 * Preprocessing threads (decode-threads.ts): an image decoded in a thread gives the tensor the
 * main thread gives, bit for bit, on every path a large image can take; errors keep their
 * catalog code and message; small images never start a thread; a dying thread fails only its
 * jobs; close() lets jobs in hand finish and refuses later ones.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { createDecodeThreads, IMAGENET_PREPROCESS, type DecodeThreads, type PreprocessSpec } from '../../../src/preprocess/index.js';
import { createImagePreprocessor, OFF_THREAD_MIN_PIXELS } from '../../../src/preprocess/preprocessor.js';
import { isServingError } from '../../../src/errors.js';
import { sharedDir } from './support.js';

const LIMITS = { maxPixels: 40_000_000 };
const CIFAR_LIKE: PreprocessSpec = { ...IMAGENET_PREPROCESS, resize: 32, crop: 32 };
const EXACT: PreprocessSpec = { ...IMAGENET_PREPROCESS, decode: 'exact' };

interface Sample {
  readonly name: string;
  readonly bytes: Uint8Array;
}

/** Real photographs enlarged to phone sizes, in each form a large upload takes. */
async function largeSamples(): Promise<Sample[]> {
  const rocket = readFileSync(join(sharedDir, 'images', 'photos', 'rocket.jpg'));
  const astronaut = readFileSync(join(sharedDir, 'images', 'photos', 'astronaut.png'));
  const big = sharp(rocket).resize(3000, 2000);
  return [
    { name: 'upright JPEG (shrink-on-load, extract)', bytes: await big.clone().jpeg({ quality: 90 }).toBuffer() },
    { name: 'EXIF-rotated JPEG (shrink-on-load, rows cut)', bytes: await big.clone().jpeg({ quality: 85 }).withMetadata({ orientation: 6 }).toBuffer() },
    { name: 'WebP (shrink-on-load)', bytes: await big.clone().webp({ quality: 80 }).toBuffer() },
    { name: 'PNG (libvips resize)', bytes: await sharp(astronaut).resize(1600, 1600).png({ compressionLevel: 1 }).toBuffer() },
    { name: 'JPEG with alpha-less greyscale', bytes: await big.clone().greyscale().jpeg().toBuffer() },
  ];
}

function sameTensor(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

describe('preprocessing threads', () => {
  let samples: Sample[];
  let threads: DecodeThreads;
  before(async () => {
    samples = await largeSamples();
    threads = createDecodeThreads({ size: 2, niceIncrement: 5 });
  });
  after(async () => {
    await threads.close();
  });

  it('decode large images to the tensor the main thread makes, bit for bit, for each spec and decode mode', async () => {
    for (const spec of [IMAGENET_PREPROCESS, EXACT, CIFAR_LIKE]) {
      const onMain = createImagePreprocessor(spec, LIMITS);
      const offMain = createImagePreprocessor(spec, LIMITS, { threads });
      for (const { name, bytes } of samples) {
        const expected = await onMain.preprocess(bytes);
        const into = new Float32Array(3 * spec.crop * spec.crop).fill(Number.NaN);
        const got = await offMain.preprocess(bytes, into);
        assert.equal(got.data, into, `${name}: written into the buffer given`);
        assert.ok(sameTensor(got.data, expected.data), `${name} at ${spec.crop}² (${spec.decode})`);
        assert.deepEqual([got.width, got.height, got.format], [expected.width, expected.height, expected.format]);
        const owned = await offMain.preprocess(bytes);
        assert.ok(sameTensor(owned.data, expected.data), `${name}: a tensor of its own`);
      }
    }
    assert.ok(threads.running >= 1);
  });

  it('give each of many concurrent jobs its own image, with tensor buffers recycled between them', async () => {
    const pre = createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS, { threads });
    const onMain = createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS);
    const expected = await Promise.all(samples.map(async (s) => (await onMain.preprocess(s.bytes)).data));
    for (let round = 0; round < 3; round++) {
      const order = Array.from({ length: 12 }, (_, i) => (i * 7 + round) % samples.length);
      const got = await Promise.all(order.map((k) => pre.preprocess((samples[k] as Sample).bytes, new Float32Array(3 * 224 * 224))));
      got.forEach((g, i) => assert.ok(sameTensor(g.data, expected[order[i] as number] as Float32Array), `round ${round}, job ${i}`));
    }
  });

  it('send only the image when it is a view over a larger buffer', async () => {
    const [first] = samples as [Sample];
    const padded = new Uint8Array(first.bytes.length * 3);
    padded.set(first.bytes, first.bytes.length);
    const view = padded.subarray(first.bytes.length, 2 * first.bytes.length);
    const pre = createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS, { threads });
    const expected = await createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS).preprocess(first.bytes);
    assert.ok(sameTensor((await pre.preprocess(view)).data, expected.data));
  });

  it('take the buffer of handed-over bytes that own it, and copy those that do not or are not handed over', async () => {
    const [first] = samples as [Sample];
    const pre = createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS, { threads });
    const expected = await createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS).preprocess(first.bytes);
    const into = () => new Float32Array(3 * 224 * 224);

    const owned = Buffer.concat([first.bytes]); // a body as Fastify joins it: a buffer of its own
    assert.equal(owned.byteLength, owned.buffer.byteLength);
    assert.ok(sameTensor((await pre.preprocess(owned, into(), undefined, true)).data, expected.data));
    assert.equal(owned.byteLength, 0, 'transferred: detached here');

    const kept = Buffer.concat([first.bytes]);
    assert.ok(sameTensor((await pre.preprocess(kept, into())).data, expected.data));
    assert.equal(kept.byteLength, first.bytes.length, 'not handed over: copied');

    // A view (a gRPC message's raw contents, several images in one buffer): its buffer is not
    // the image's to give, so the image is copied and its neighbours stay readable.
    const both = Buffer.concat([first.bytes, first.bytes]);
    const [a, b] = [both.subarray(0, first.bytes.length), both.subarray(first.bytes.length)];
    for (const view of [a, b]) assert.ok(sameTensor((await pre.preprocess(view, into(), undefined, true)).data, expected.data));
    assert.equal(both.byteLength, 2 * first.bytes.length);
    assert.ok(Buffer.from(b).equals(Buffer.from(first.bytes)));
  });

  it('answer a corrupt large image with the catalog error the main thread gives', async () => {
    const [first] = samples as [Sample];
    const truncated = first.bytes.subarray(0, Math.floor(first.bytes.length / 2));
    const onMain = await createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS)
      .preprocess(truncated)
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    const offMain = await createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS, { threads })
      .preprocess(truncated)
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    assert.ok(isServingError(onMain) && isServingError(offMain));
    assert.equal(offMain.code, 'INVALID_IMAGE');
    assert.equal(offMain.statusCode, 400);
    assert.equal(offMain.message, onMain.message);
  });

  it('leave images under a megapixel to the main thread', async () => {
    const fresh = createDecodeThreads({ size: 1 });
    try {
      const pre = createImagePreprocessor(IMAGENET_PREPROCESS, LIMITS, { threads: fresh });
      const rocket = readFileSync(join(sharedDir, 'images', 'photos', 'rocket.jpg'));
      assert.ok(640 * 427 < OFF_THREAD_MIN_PIXELS);
      await pre.preprocess(rocket);
      assert.equal(fresh.running, 0, 'no thread started for a 640×427 photo');
      await pre.preprocess((samples[0] as Sample).bytes);
      assert.equal(fresh.running, 1, 'the first large image starts one');
    } finally {
      await fresh.close();
    }
  });
});

describe('preprocessing threads, failing and closing', () => {
  const image = {
    format: 'jpeg' as const,
    name: 'JPEG',
    header: {
      format: 'jpeg',
      compression: undefined,
      width: 3000,
      height: 2000,
      space: 'srgb',
      hasAlpha: false,
      channels: 3,
      bytesPerSample: 1,
      upright: true,
    },
  };

  it('fail the jobs of a thread that dies with INTERNAL, and start a new thread for the next job', async () => {
    // A thread that dies on its first job.
    const dying = new URL(
      `data:text/javascript,${encodeURIComponent("import { parentPort } from 'node:worker_threads'; parentPort.on('message', () => process.exit(3));")}`,
    );
    const threads = createDecodeThreads({ size: 1, workerUrl: dying });
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const err = await threads.decode(IMAGENET_PREPROCESS, LIMITS.maxPixels, { ...image, bytes: new Uint8Array(16) }).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(isServingError(err), `attempt ${attempt}`);
        assert.equal(err.code, 'INTERNAL');
        assert.match(err.message, /exited \(code 3\)/);
        assert.equal(threads.running, 0);
      }
    } finally {
      await threads.close();
    }
  });

  it('finish the jobs in hand on close, then refuse new ones with SHUTTING_DOWN', async () => {
    // A thread that answers each job after 50 ms with a tensor of its crop.
    const slow = new URL(
      `data:text/javascript,${encodeURIComponent(
        "import { parentPort } from 'node:worker_threads'; parentPort.on('message', (job) => setTimeout(() => { const t = new Float32Array(3 * job.spec.crop * job.spec.crop).fill(7); parentPort.postMessage({ type: 'tensor', id: job.id, tensor: t.buffer }, [t.buffer]); }, 50));",
      )}`,
    );
    const threads = createDecodeThreads({ size: 1, workerUrl: slow });
    const inHand = [1, 2, 3].map(() => threads.decode(CIFAR_LIKE, LIMITS.maxPixels, { ...image, bytes: new Uint8Array(16) }));
    const closed = threads.close();
    const refused = await threads.decode(CIFAR_LIKE, LIMITS.maxPixels, { ...image, bytes: new Uint8Array(16) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isServingError(refused));
    assert.equal(refused.code, 'SHUTTING_DOWN');
    const done = await Promise.all(inHand);
    for (const t of done) assert.ok(t.length === 3 * 32 * 32 && t.every((v) => v === 7));
    await closed;
    assert.equal(threads.running, 0);
    assert.equal(threads.close(), closed, 'idempotent');
  });

  it('refuse a size under one thread', () => {
    assert.throws(() => createDecodeThreads({ size: 0 }), RangeError);
  });
});
