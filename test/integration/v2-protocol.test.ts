/**
 * The Open Inference Protocol over HTTP as clients other than ours send it: bodies with no
 * Content-Type or as octet-stream, the binary tensor extension both ways, classification,
 * versioned routes, requested outputs, compression both ways (a gzip bomb refused after reading
 * no more than the limit), KServe v1's server routes, and JSON answers typed exactly
 * `application/json`. tritonclient itself runs in tritonclient.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { photo, resnet20App } from '../helpers.js';
import { listen, send } from './hostile-support.js';

const input = Array.from({ length: 3 * 32 * 32 }, (_, i) => ((i * 7919) % 256) / 255 - 0.5);

function fp32(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

/** A binary-form request: JSON header then tensors; returns the body and its header length. */
function binaryRequest(header: unknown, ...tail: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...tail]), headers: { 'Inference-Header-Content-Length': String(json.length) } };
}

/** Splits a binary answer into its JSON header and tail. */
function splitAnswer(
  body: Buffer,
  headerLength: number,
): {
  json: { outputs: Array<{ name: string; datatype: string; shape: number[]; data?: unknown[]; parameters?: { binary_data_size?: number } }> };
  tail: Buffer;
} {
  return { json: JSON.parse(body.subarray(0, headerLength).toString()), tail: body.subarray(headerLength) };
}

describe('Open Inference Protocol over HTTP', () => {
  it('reads bodies with no Content-Type and as octet-stream, answers binary outputs with the header, equal to JSON ones', async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const path = '/v2/models/resnet20/infer';
    const json = await send(port, {
      method: 'POST',
      path,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: input }] }),
    });
    assert.equal(json.status, 200, json.text);
    assert.equal(json.headers['content-type'], 'application/json');
    const logits = (JSON.parse(json.text) as { outputs: Array<{ data: number[] }> }).outputs[0]!.data;

    const header = {
      inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', parameters: { binary_data_size: input.length * 4 } }],
      parameters: { binary_data_output: true },
    };
    for (const type of [undefined, 'application/octet-stream']) {
      const { body, headers } = binaryRequest(header, fp32(input));
      const answer = await app.inject({ method: 'POST', url: path, headers: { ...headers, ...(type ? { 'content-type': type } : {}) }, payload: body });
      assert.equal(answer.statusCode, 200, answer.body);
      assert.equal(answer.headers['content-type'], 'application/octet-stream');
      const split = splitAnswer(answer.rawPayload, Number(answer.headers['inference-header-content-length']));
      const out = split.json.outputs[0]!;
      assert.deepEqual([out.name, out.datatype, out.shape, out.parameters?.binary_data_size, out.data], ['logits', 'FP32', [1, 10], 40, undefined]);
      const binaryLogits = Array.from({ length: 10 }, (_, i) => split.tail.readFloatLE(i * 4));
      assert.deepEqual(
        binaryLogits,
        logits.map((v) => Math.fround(v)),
      );
    }
  });

  it('answers classification, versioned routes, requested outputs and KServe v1 server routes', async (t) => {
    const app = await resnet20App(t);
    const chelsea = (await photo('chelsea.png')).toString('base64');
    const infer = (url: string, body: unknown) =>
      app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    const image = { name: 'image', shape: [1], datatype: 'BYTES', data: [chelsea] };

    const classified = await infer('/v2/models/resnet20/versions/1/infer', {
      inputs: [image],
      outputs: [{ name: 'logits', parameters: { classification: 3 } }],
    });
    assert.equal(classified.statusCode, 200, classified.body);
    const out = (classified.json() as { outputs: Array<{ datatype: string; shape: number[]; data: string[] }> }).outputs[0]!;
    assert.equal(out.datatype, 'BYTES');
    assert.deepEqual(out.shape, [1, 3]);
    assert.match(out.data[0]!, /^\d+\.\d{6}:3:cat$/);
    const values = out.data.map((s) => Number(s.split(':')[0]));
    assert.deepEqual(
      values,
      [...values].sort((a, b) => b - a),
    );

    const otherVersion = await infer('/v2/models/resnet20/versions/2/infer', { inputs: [image] });
    assert.deepEqual([otherVersion.statusCode, otherVersion.json().code], [404, 'MODEL_NOT_FOUND']);
    assert.equal((await app.inject({ url: '/v2/models/resnet20/versions/1/ready' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/v2/models/resnet20/versions/2/ready' })).statusCode, 404);
    const unknownOutput = await infer('/v2/models/resnet20/infer', { inputs: [image], outputs: [{ name: 'probabilities' }] });
    assert.deepEqual([unknownOutput.statusCode, unknownOutput.json().code], [400, 'INVALID_REQUEST']);

    assert.deepEqual((await app.inject({ url: '/' })).json(), { status: 'alive' });
    assert.deepEqual((await app.inject({ url: '/v1/models' })).json(), { models: ['resnet20'] });
    const server = (await app.inject({ url: '/v2' })).json() as { extensions: string[] };
    assert.ok(server.extensions.includes('binary_tensor_data') && server.extensions.includes('classification'));
    const meta = (await app.inject({ url: '/v2/models/resnet20' })).json() as { parameters: Record<string, unknown> };
    for (const [k, v] of Object.entries(meta.parameters))
      assert.ok(['string', 'number', 'boolean'].includes(typeof v), `parameters.${k} is ${JSON.stringify(v)}`);
  });

  it('refuses other Content-Types on infer naming what it takes, and types JSON errors exactly application/json', async (t) => {
    const app = await resnet20App(t);
    for (const type of ['text/plain', 'image/png', 'application/x-www-form-urlencoded']) {
      const r = await app.inject({ method: 'POST', url: '/v2/models/resnet20/infer', headers: { 'content-type': type }, payload: '{"inputs": []}' });
      assert.deepEqual([r.statusCode, r.json().code], [415, 'UNSUPPORTED_MEDIA_TYPE'], type);
      assert.match(r.json().error as string, /application\/octet-stream/);
      assert.equal(r.headers['content-type'], 'application/json');
    }
    const missing = await app.inject({ url: '/v2/models/nope' });
    assert.equal(missing.headers['content-type'], 'application/json');
  });

  it('takes gzip and deflate bodies, refuses a gzip bomb with 413, and compresses answers only for infer', async (t) => {
    const app = await resnet20App(t, { JSON_BODY_MAX_BYTES: String(1 << 20), UPLOAD_MAX_BYTES: String(1 << 20) });
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: input }] });
    const plain = await app.inject({ method: 'POST', url: '/v2/models/resnet20/infer', headers: { 'content-type': 'application/json' }, payload: body });
    const gz = await app.inject({
      method: 'POST',
      url: '/v2/models/resnet20/infer',
      headers: { 'content-encoding': 'gzip', 'accept-encoding': 'gzip' },
      payload: gzipSync(body),
    });
    assert.equal(gz.statusCode, 200, gz.body);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.deepEqual(JSON.parse(gunzipSync(gz.rawPayload).toString()), plain.json());

    // 64 MiB of zeros in about 64 KiB: refused once 1 MiB has been inflated.
    const bomb = gzipSync(Buffer.alloc(64 << 20));
    assert.ok(bomb.length < 1 << 20);
    const refused = await app.inject({ method: 'POST', url: '/v2/models/resnet20/infer', headers: { 'content-encoding': 'gzip' }, payload: bomb });
    assert.deepEqual([refused.statusCode, refused.json().code], [413, 'PAYLOAD_TOO_LARGE']);
    const corrupt = await app.inject({
      method: 'POST',
      url: '/v2/models/resnet20/infer',
      headers: { 'content-encoding': 'gzip' },
      payload: Buffer.from('not gzip'),
    });
    assert.deepEqual([corrupt.statusCode, corrupt.json().code], [400, 'INVALID_REQUEST']);
    const brotli = await app.inject({ method: 'POST', url: '/v2/models/resnet20/infer', headers: { 'content-encoding': 'br' }, payload: body });
    assert.deepEqual([brotli.statusCode, brotli.json().code], [415, 'UNSUPPORTED_MEDIA_TYPE']);
    // tritonclient's aio client asks every answer for gzip but decompresses only infer answers.
    const meta = await app.inject({ url: '/v2', headers: { 'accept-encoding': 'gzip, deflate' } });
    assert.equal(meta.headers['content-encoding'], undefined);
  });
});
