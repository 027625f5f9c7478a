/**
 * The HTTP API end to end with the shared, trained ResNet-20 and real images: real
 * predictions, every input form, both protocols, every error status.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import request from 'supertest';
import { buildApp } from '../../src/app.js';
import { openSession } from '../../src/inference/onnx-binding.js';
import { CIFAR_DIR, PHOTOS_DIR, REPO_ROOT, RESNET20_CONFIG, RESNET20_DIR, photo, resnet20App, startApp, tempRepository, testConfig } from '../helpers.js';
import { listen, send } from './hostile-support.js';

interface ClassScore {
  label: string;
  index: number;
  score: number;
}
interface Prediction extends ClassScore {
  top_k: ClassScore[];
}

const b64 = (bytes: Buffer) => ({ b64: bytes.toString('base64') });

function softmax(row: number[]): number[] {
  const max = Math.max(...row);
  const exps = row.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function assertClose(actual: number[], expected: number[], tolerance: number, what: string) {
  assert.equal(actual.length, expected.length, `${what}: lengths differ`);
  actual.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) <= tolerance, `${what}[${i}]: ${v} vs ${expected[i]}`));
}

describe('v1 predict with the trained ResNet-20', () => {
  it('names the cat in chelsea.png, with a softmax score, labels and top_k', async (t) => {
    const app = await resnet20App(t);
    const res = await request(app.server)
      .post('/v1/models/resnet20:predict?top_k=3')
      .set('Content-Type', 'image/png')
      .send(await photo('chelsea.png'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.model_name, 'resnet20');
    assert.equal(res.body.model_version, '1');
    const [p] = res.body.predictions as Prediction[];
    assert.equal(p!.label, 'cat');
    assert.equal(p!.index, 3);
    assert.ok(p!.score > 0.9 && p!.score <= 1, `score ${p!.score}`);
    assert.equal(p!.top_k.length, 3);
    assert.deepEqual(p!.top_k[0], { label: p!.label, index: p!.index, score: p!.score });
    assert.ok(p!.top_k[0]!.score >= p!.top_k[1]!.score && p!.top_k[1]!.score >= p!.top_k[2]!.score);
    assert.match(res.headers['server-timing'] ?? '', /preprocess;dur=[\d.]+, queue;dur=[\d.]+, infer;dur=[\d.]+, postprocess;dur=[\d.]+, total;dur=[\d.]+/);
    assert.ok(res.headers['x-request-id']);
  });

  it('gets at least 38 of the 50 CIFAR-10 test images right', async (t) => {
    const app = await resnet20App(t);
    const files = (await readdir(CIFAR_DIR)).filter((f) => f.endsWith('.jpg')).sort();
    assert.equal(files.length, 50);
    let right = 0;
    for (let i = 0; i < files.length; i += 10) {
      const chunk = files.slice(i, i + 10);
      const instances = await Promise.all(chunk.map(async (f) => b64(await readFile(join(CIFAR_DIR, f)))));
      const res = await request(app.server).post('/v1/models/resnet20:predict').send({ instances });
      assert.equal(res.status, 200, res.text);
      (res.body.predictions as Prediction[]).forEach((p, j) => {
        if (p.label === chunk[j]!.split('_')[0]) right++;
      });
    }
    t.diagnostic(`${right}/50 right`);
    assert.ok(right >= 38, `only ${right} of 50 right`);
  });

  it('answers a multi-image request in order, equal to one-by-one answers', async (t) => {
    const app = await resnet20App(t);
    const names = ['cat_0000.jpg', 'ship_0001.jpg', 'frog_0002.jpg', 'truck_0003.jpg', 'horse_0004.jpg'];
    const images = await Promise.all(names.map((n) => readFile(join(CIFAR_DIR, n))));
    let multi = request(app.server).post('/v1/models/resnet20:predict');
    images.forEach((img, i) => (multi = multi.attach(`image${i}`, img, names[i]!)));
    const together = await multi;
    assert.equal(together.status, 200, together.text);
    const batched = together.body.predictions as Prediction[];
    assert.equal(batched.length, names.length);
    for (const [i, img] of images.entries()) {
      const single = await request(app.server).post('/v1/predict').set('Content-Type', 'image/jpeg').send(img);
      assert.equal(single.status, 200, single.text);
      const alone = (single.body.predictions as Prediction[])[0]!;
      assert.equal(batched[i]!.index, alone.index, `image ${i} (${names[i]})`);
      assert.ok(Math.abs(batched[i]!.score - alone.score) < 1e-5, `image ${i}: ${batched[i]!.score} vs ${alone.score}`);
    }
  });

  it('gives identical scores for raw, multipart and base64 JSON input', async (t) => {
    const app = await resnet20App(t);
    const img = await photo('coffee.png');
    const raw = await request(app.server).post('/v1/models/resnet20:predict?top_k=10').set('Content-Type', 'image/png').send(img);
    const multipart = await request(app.server).post('/v1/models/resnet20:predict?top_k=10').attach('file', img, 'coffee.png');
    const json = await request(app.server)
      .post('/v1/models/resnet20:predict?top_k=10')
      .send({ instances: [b64(img)] });
    for (const res of [raw, multipart, json]) assert.equal(res.status, 200, res.text);
    const scores = (res: request.Response) => (res.body.predictions[0] as Prediction).top_k;
    assert.deepEqual(scores(multipart), scores(raw));
    assert.deepEqual(scores(json), scores(raw));
    assert.equal(scores(raw).length, 10);
    const total = scores(raw).reduce((a, c) => a + c.score, 0);
    assert.ok(Math.abs(total - 1) < 1e-4, `probabilities sum to ${total}`);
  });

  it('serves model metadata on v1 and v2', async (t) => {
    const app = await resnet20App(t);
    const v1 = await request(app.server).get('/v1/models/resnet20');
    assert.equal(v1.status, 200);
    assert.equal(v1.body.name, 'resnet20');
    assert.equal(v1.body.ready, true);
    assert.equal(v1.body.execution_provider, 'cpu');
    assert.match(v1.body.sha256, /^[0-9a-f]{64}$/);
    assert.equal(v1.body.sha256, 'ac146e6ebcfc55d69cbab6bdb7d21748f2ac0fcc35378f0fc7a0b1937d488a95');
    assert.deepEqual(v1.body.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 32, 32] }]);
    assert.deepEqual(v1.body.outputs, [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }]);
    assert.equal(v1.body.preprocess.resize, 32);
    assert.equal(v1.body.preprocess.crop, 32);
    assert.equal(v1.body.labels, 10);
    const v2 = await request(app.server).get('/v2/models/resnet20');
    assert.equal(v2.status, 200);
    assert.deepEqual(v2.body.versions, ['1']);
    assert.equal(v2.body.platform, 'onnxruntime_onnx');
    assert.deepEqual(v2.body.inputs, v1.body.inputs);
    assert.equal(v2.body.parameters.execution_provider, 'cpu');
    const server = await request(app.server).get('/v2');
    assert.equal(server.status, 200);
    assert.equal(server.body.name, 'resnet-serve');
    assert.equal(server.body.version, JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')).version, "package.json's version");
    assert.deepEqual((await request(app.server).get('/v2/models/resnet20/ready')).body, { name: 'resnet20', ready: true });
  });
});

describe('raw images under a Content-Type that says nothing of the format', () => {
  const topLabel = (text: string) => (JSON.parse(text) as { predictions: Prediction[] }).predictions[0]!.label;

  it("takes chelsea.png as application/x-www-form-urlencoded (curl's default), application/octet-stream, or with no Content-Type", async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const png = await photo('chelsea.png');
    for (const type of ['application/x-www-form-urlencoded', 'application/octet-stream', undefined]) {
      for (const path of ['/v1/predict', '/v1/models/resnet20:predict']) {
        const answer = await send(port, {
          method: 'POST',
          path,
          headers: { 'Content-Length': png.length, ...(type === undefined ? {} : { 'Content-Type': type }) },
          body: png,
        });
        assert.equal(answer.status, 200, `${type ?? 'no Content-Type'} to ${path}: ${answer.text}`);
        assert.equal(topLabel(answer.text), 'cat', `${type ?? 'no Content-Type'} to ${path}`);
      }
    }
  });

  it('answers `curl --data-binary @chelsea.png URL`, with no -H, with the cat', async (t) => {
    const curl = await new Promise<string | undefined>((resolve) => execFile('curl', ['--version'], (error, stdout) => resolve(error ? undefined : stdout)));
    if (curl === undefined) {
      t.skip('curl is not installed');
      return;
    }
    const app = await resnet20App(t);
    const port = await listen(app);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'curl',
        [
          '--silent',
          '--show-error',
          '--data-binary',
          `@${join(PHOTOS_DIR, 'chelsea.png')}`,
          '--write-out',
          '\n%{http_code}',
          `http://127.0.0.1:${port}/v1/predict`,
        ],
        (error, stdout) => (error ? reject(error) : resolve(stdout)),
      ),
    );
    const [body = '', status] = [out.slice(0, out.lastIndexOf('\n')), out.slice(out.lastIndexOf('\n') + 1)];
    assert.equal(status, '200', body);
    assert.equal(topLabel(body), 'cat');
  });

  it('keeps the declared type when it says something else: image/* is an image, JSON is JSON, text is refused', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const jpeg = await readFile(join(CIFAR_DIR, 'cat_0000.jpg'));
    const post = async (type: string) => {
      const answer = await send(port, { method: 'POST', path: '/v1/predict', headers: { 'Content-Type': type, 'Content-Length': jpeg.length }, body: jpeg });
      return { status: answer.status, ...(JSON.parse(answer.text) as { code?: string; error?: string }) };
    };
    // The format is read from the bytes, as it always was: a JPEG declared as PNG is a JPEG.
    assert.equal((await post('image/png')).status, 200);
    const asJson = await post('application/json');
    assert.deepEqual([asJson.status, asJson.code], [400, 'INVALID_JSON']);
    const asText = await post('text/plain');
    assert.deepEqual([asText.status, asText.code], [415, 'UNSUPPORTED_MEDIA_TYPE']);
    assert.match(asText.error ?? '', /^Unsupported Content-Type "text\/plain"; POST \/v1\/predict takes /);
    const multipart = await post('multipart/form-data; boundary=x');
    assert.deepEqual([multipart.status, multipart.code], [400, 'INVALID_REQUEST'], 'read as multipart, and malformed');
  });

  it('refuses a body of such a type that is no image with 415, naming what the route takes', async (t) => {
    const app = await resnet20App(t, { UPLOAD_MAX_BYTES: '200000' });
    const port = await listen(app);
    const post = (path: string, body: string | Buffer, type?: string) =>
      send(port, {
        method: 'POST',
        path,
        headers: { 'Content-Length': Buffer.byteLength(body), ...(type === undefined ? {} : { 'Content-Type': type }) },
        body,
      });
    const v1Inputs =
      /takes a JPEG, PNG, WebP, GIF, TIFF or AVIF image as the body \(Content-Type image\/\*, application\/octet-stream, application\/x-www-form-urlencoded or none; .*\), multipart\/form-data with image files, or application\/json \{"instances": \[\{"b64"/;
    const refusals: Array<[string, string, string | undefined, RegExp]> = [
      [
        '/v1/predict',
        'a=b&c=d',
        'application/x-www-form-urlencoded',
        /^The body \(Content-Type "application\/x-www-form-urlencoded"\) is not an image; POST \/v1\/predict takes /,
      ],
      [
        '/v1/models/resnet20:predict',
        'a=b&c=d',
        'application/x-www-form-urlencoded',
        /^The body \(Content-Type "application\/x-www-form-urlencoded"\) is not an image; POST \/v1\/models\/\{name\}:predict takes /,
      ],
      ['/v1/predict', 'a=b&c=d', undefined, /^The body \(no Content-Type\) is not an image; /],
      ['/v1/predict', 'a=b&c=d', 'application/octet-stream', /^The body \(Content-Type "application\/octet-stream"\) is not an image; /],
      [
        '/v1/predict',
        '{"instances": []}',
        'application/x-www-form-urlencoded',
        /is not an image: it looks like JSON \(send it with Content-Type: application\/json\); /,
      ],
      ['/v1/predict', '%PDF-1.7\n', undefined, /is not an image: it looks like PDF; /],
    ];
    for (const [path, body, type, message] of refusals) {
      const answer = await post(path, body, type);
      const what = `${body} as ${type ?? 'no Content-Type'} to ${path}`;
      assert.equal(answer.status, 415, `${what}: ${answer.text}`);
      const { code, error } = JSON.parse(answer.text) as { code: string; error: string };
      assert.equal(code, 'UNSUPPORTED_MEDIA_TYPE', what);
      assert.match(error, message, what);
      assert.match(error, v1Inputs, what);
    }
    // Within the same limits as any raw image: too large is 413, empty is "no image".
    for (const type of ['application/x-www-form-urlencoded', undefined]) {
      const large = await post('/v1/predict', Buffer.alloc(300_000, 1), type);
      assert.deepEqual([large.status, (JSON.parse(large.text) as { code: string }).code], [413, 'PAYLOAD_TOO_LARGE'], type);
    }
    const empty = await post('/v1/predict', '', 'application/x-www-form-urlencoded');
    assert.deepEqual([empty.status, (JSON.parse(empty.text) as { code: string }).code], [400, 'NO_IMAGES']);
  });

  it("has v2 infer refuse what it does not take naming v2's inputs, raw images included", async (t) => {
    const app = await resnet20App(t);
    const png = await photo('chelsea.png');
    for (const [type, body] of [
      ['image/png', png],
      ['application/x-www-form-urlencoded', png],
      ['text/plain', 'hello'],
      ['multipart/form-data; boundary=x', 'hello'],
      ['not a type', 'hello'],
    ] as const) {
      const res = await request(app.server).post('/v2/models/resnet20/infer').set('Content-Type', type).send(body);
      assert.deepEqual([res.status, res.body.code], [415, 'UNSUPPORTED_MEDIA_TYPE'], `${type}: ${res.text}`);
      assert.match(
        res.body.error,
        /^Unsupported Content-Type ".*"; POST \/v2\/models\/\{name\}\/infer takes an inference request as application\/json, application\/octet-stream \(JSON header then binary tensors, with Inference-Header-Content-Length\) or no Content-Type; images go in BYTES inputs, or as raw bodies to POST \/v1\/models\/\{name\}:predict$/,
        type,
      );
    }
  });
});

describe('several models', () => {
  it('answers /v1/predict without DEFAULT_MODEL with a 404 that names the models and both ways out, which both work', async (t) => {
    const repo = await tempRepository(t, [
      { name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG },
      { name: 'r18', from: RESNET20_DIR, config: RESNET20_CONFIG },
    ]);
    const png = await photo('chelsea.png');
    const app = await startApp(t, repo);
    const res = await request(app.server).post('/v1/predict').set('Content-Type', 'image/png').send(png);
    assert.deepEqual([res.status, res.body.code], [404, 'MODEL_NOT_FOUND'], res.text);
    assert.equal(
      res.body.error,
      'Several models are loaded (r18, resnet20) and DEFAULT_MODEL is not set, so this route cannot tell which to use: ' +
        'set DEFAULT_MODEL=<one of them> and restart (e.g. DEFAULT_MODEL=r18), or send the request to /v1/models/<name>:predict (e.g. /v1/models/r18:predict)',
    );
    const named = await request(app.server).post('/v1/models/r18:predict').set('Content-Type', 'image/png').send(png);
    assert.equal(named.status, 200, named.text);
    assert.equal(named.body.model_name, 'r18');
    const withDefault = await startApp(t, repo, { DEFAULT_MODEL: 'r18' });
    const short = await request(withDefault.server).post('/v1/predict').set('Content-Type', 'image/png').send(png);
    assert.equal(short.status, 200, short.text);
    assert.equal(short.body.model_name, 'r18');
  });
});

describe('v2 infer', () => {
  it('returns the same logits as onnxruntime directly for an FP32 tensor, echoing id', async (t) => {
    const app = await resnet20App(t);
    const batch = 3;
    const data = Array.from({ length: batch * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37) * 2);
    const res = await request(app.server)
      .post('/v2/models/resnet20/infer')
      .send({ id: 'req-42', inputs: [{ name: 'input', shape: [batch, 3, 32, 32], datatype: 'FP32', data }] });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.id, 'req-42');
    assert.equal(res.body.model_name, 'resnet20');
    const [out] = res.body.outputs;
    assert.equal(out.name, 'logits');
    assert.equal(out.datatype, 'FP32');
    assert.deepEqual(out.shape, [batch, 10]);

    const session = await openSession(join(RESNET20_DIR, 'model.onnx'), { intraOpThreads: 1 });
    t.after(() => session.release());
    const direct = await session.run({ input: { data: new Float32Array(data), dims: [batch, 3, 32, 32] } });
    assertClose(out.data, Array.from(direct.logits!.data), 1e-4, 'logits');
  });

  it('accepts nested tensor data', async (t) => {
    const app = await resnet20App(t);
    const flat = Array.from({ length: 3 * 32 * 32 }, (_, i) => (i % 7) / 7);
    const nested = [[0, 1, 2].map((c) => Array.from({ length: 32 }, (_, y) => flat.slice(c * 1024 + y * 32, c * 1024 + y * 32 + 32)))];
    const a = await request(app.server)
      .post('/v2/models/resnet20/infer')
      .send({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: flat }] });
    const b = await request(app.server)
      .post('/v2/models/resnet20/infer')
      .send({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: nested }] });
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200, b.text);
    assert.deepEqual(a.body.outputs[0].data, b.body.outputs[0].data);
  });

  it('decodes BYTES inputs as base64 images, equal to v1 predict', async (t) => {
    const app = await resnet20App(t);
    const imgs = [await photo('chelsea.png'), await readFile(join(CIFAR_DIR, 'ship_0000.jpg'))];
    const v2 = await request(app.server)
      .post('/v2/models/resnet20/infer')
      .send({ inputs: [{ name: 'image', shape: [2], datatype: 'BYTES', data: imgs.map((i) => i.toString('base64')) }] });
    assert.equal(v2.status, 200, v2.text);
    assert.deepEqual(v2.body.outputs[0].shape, [2, 10]);
    const v1 = await request(app.server)
      .post('/v1/models/resnet20:predict?top_k=10')
      .send({ instances: imgs.map(b64) });
    assert.equal(v1.status, 200, v1.text);
    (v1.body.predictions as Prediction[]).forEach((p, i) => {
      const probs = softmax(v2.body.outputs[0].data.slice(i * 10, i * 10 + 10));
      for (const c of p.top_k) assert.ok(Math.abs(probs[c.index]! - c.score) < 1e-5, `image ${i} class ${c.index}`);
    });
  });
});

describe('errors', () => {
  const expectError = (res: request.Response, status: number, code: string) => {
    assert.equal(res.status, status, `${code}: ${res.text}`);
    assert.equal(res.body.code, code, res.text);
    assert.equal(typeof res.body.error, 'string');
    assert.ok(res.body.error.length > 0);
    assert.doesNotMatch(res.text, /\/work\/|node_modules|at .*\.js:\d+/, 'no internal paths or stack traces');
  };

  it('answers each error with its status and stable code', async (t) => {
    const app = await resnet20App(t, { UPLOAD_MAX_BYTES: '200000', JSON_BODY_MAX_BYTES: '300000' });
    const s = app.server;
    // Small enough for this test's UPLOAD_MAX_BYTES.
    const png = await readFile(join(CIFAR_DIR, 'cat_0001.jpg'));
    const truncated = (await photo('chelsea.png')).subarray(0, 400);
    expectError(await request(s).post('/v1/predict').set('Content-Type', 'image/png').send(truncated), 400, 'INVALID_IMAGE');
    expectError(await request(s).post('/v1/predict').set('Content-Type', 'application/json').send('{"instances": [{"b64": '), 400, 'INVALID_JSON');
    expectError(
      await request(s)
        .post('/v1/predict')
        .send({ instances: [{ b64: 'not*base64!' }] }),
      400,
      'INVALID_BASE64',
    );
    expectError(await request(s).post('/v1/predict').send({ images: [] }), 400, 'INVALID_REQUEST');
    expectError(await request(s).post('/v1/predict').set('Content-Type', 'image/png').send(Buffer.alloc(0)), 400, 'NO_IMAGES');
    expectError(
      await request(s)
        .post('/v2/models/resnet20/infer')
        .send({ inputs: [{ name: 'input', shape: [1, 3, 16, 16], datatype: 'FP32', data: new Array(768).fill(0) }] }),
      400,
      'INVALID_TENSOR',
    );
    expectError(
      await request(s)
        .post('/v2/models/resnet20/infer')
        .send({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: [1, 2, 3] }] }),
      400,
      'INVALID_TENSOR',
    );
    expectError(await request(s).post('/v1/predict?top_k=0').set('Content-Type', 'image/png').send(png), 400, 'INVALID_REQUEST');
    expectError(await request(s).post('/v1/models/nope:predict').set('Content-Type', 'image/png').send(png), 404, 'MODEL_NOT_FOUND');
    expectError(await request(s).post('/v1/models/..%2F..%2Fetc%2Fpasswd:predict').set('Content-Type', 'image/png').send(png), 404, 'MODEL_NOT_FOUND');
    expectError(await request(s).get('/v2/models/nope'), 404, 'MODEL_NOT_FOUND');
    expectError(await request(s).post('/v1/models/resnet20:explain').set('Content-Type', 'image/png').send(png), 404, 'NOT_FOUND');
    expectError(await request(s).get('/no/such/route'), 404, 'NOT_FOUND');
    expectError(await request(s).post('/v1/predict').set('Content-Type', 'image/png').send(Buffer.alloc(300_000, 1)), 413, 'PAYLOAD_TOO_LARGE');
    expectError(await request(s).post('/v1/predict').attach('f', Buffer.alloc(300_000, 1), 'big.png'), 413, 'PAYLOAD_TOO_LARGE');
    expectError(
      await request(s)
        .post('/v1/predict')
        .send({ instances: [{ b64: 'A'.repeat(310_000) }] }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expectError(await request(s).post('/v1/predict').set('Content-Type', 'text/plain').send('hello'), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(
      await request(s).post('/v1/predict').set('Content-Type', 'image/svg+xml').send('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  });

  it('is not ready, and refuses inference with 503, until its models are loaded', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const app = await buildApp(testConfig(repo), { defaultMetrics: false });
    t.after(() => app.close());
    await app.ready();
    const before = await request(app.server).get('/v2/health/ready');
    assert.equal(before.status, 503);
    assert.equal(before.body.ready, false);
    assert.equal(before.body.code, 'NOT_READY');
    assert.equal((await request(app.server).get('/readyz')).status, 503);
    assert.equal((await request(app.server).get('/v2/health/live')).status, 200, 'alive while loading');
    assert.equal((await request(app.server).get('/livez')).status, 200);
    expectError(
      await request(app.server)
        .post('/v1/predict')
        .set('Content-Type', 'image/png')
        .send(await photo('chelsea.png')),
      503,
      'MODEL_NOT_READY',
    );
    expectError(await request(app.server).get('/v2/models/resnet20'), 503, 'MODEL_NOT_READY');

    await app.serving.registry.load();
    const after = await request(app.server).get('/v2/health/ready');
    assert.equal(after.status, 200);
    assert.deepEqual(after.body, { ready: true });
    assert.equal((await request(app.server).get('/readyz')).status, 200);
  });
});
