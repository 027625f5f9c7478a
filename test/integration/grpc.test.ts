/**
 * The Open Inference Protocol over gRPC, as a Node gRPC client (@grpc/grpc-js) sees it: answers
 * equal to HTTP's for the same tensor, raw and typed contents, classification, malformed
 * inputs, every catalog error as its gRPC status with the catalog code in `error-code`,
 * message sizes, API keys, the rate limit, deadlines and cancellation dropping queued work, the
 * stream in order, health, and the drain. Queued and running work is decided by the gated
 * stand-in worker, never by timing. SIGTERM against the real process is in
 * grpc-shutdown.test.ts.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { errors } from '../../src/errors.js';
import { grpcCodeOf } from '../../src/grpc/codec.js';
import { crashGatedWorkers, type GateEvent } from '../fixtures/workers/gated-worker.js';
import { CIFAR_DIR, photo } from '../helpers.js';
import {
  argmax,
  bytesElements,
  bytesRequest,
  errorCode,
  expectStatus,
  fp32Bytes,
  fp32Request,
  grpcApp,
  ITEM_VALUES,
  items,
  MODEL,
  openStream,
  readBytesElements,
  readFp32,
  startUnary,
  unary,
  until,
  type InferResponse,
} from './grpc-support.js';

const { status } = grpc;
const cifar = (name: string) => readFile(join(CIFAR_DIR, name));
const metricValue = async (app: FastifyInstance, pattern: RegExp) => {
  const m = pattern.exec((await app.serving.metrics.render(undefined)).body);
  return m ? Number(m[1]) : 0;
};
/** `inference_requests_total` of the model over gRPC for `outcome`. */
const requestsTotal = (app: FastifyInstance, outcome: string) =>
  metricValue(app, new RegExp(`^inference_requests_total\\{model="${MODEL}",version="1",outcome="${outcome}",protocol="grpc"\\} (\\d+)`, 'm'));
/**
 * The batch sizes the gated worker ran, once it has reported at least one: its reports come over
 * their own channel, so they may arrive after the answers of the batches they describe.
 */
const batchesRun = async (events: readonly GateEvent[]) => {
  await until(() => events.some((e) => e.event === 'run'), 'the worker reported a run');
  return events.filter((e) => e.event === 'run').map((e) => e.batch);
};
interface StreamAnswer {
  error_message: string;
  infer_response: InferResponse;
}

describe('gRPC: the catalog as gRPC statuses', () => {
  it('maps every catalog error by its HTTP status', () => {
    const expected: Record<number, grpc.status> = {
      400: status.INVALID_ARGUMENT,
      401: status.UNAUTHENTICATED,
      403: status.FAILED_PRECONDITION,
      404: status.NOT_FOUND,
      405: status.INVALID_ARGUMENT,
      408: status.INVALID_ARGUMENT,
      413: status.RESOURCE_EXHAUSTED,
      415: status.INVALID_ARGUMENT,
      417: status.INVALID_ARGUMENT,
      429: status.RESOURCE_EXHAUSTED,
      431: status.INVALID_ARGUMENT,
      499: status.CANCELLED,
      500: status.INTERNAL,
      503: status.UNAVAILABLE,
      504: status.DEADLINE_EXCEEDED,
    };
    for (const factory of Object.values(errors)) {
      const want = expected[factory.statusCode];
      assert.notEqual(want, undefined, `${factory.code}: no expected gRPC status for HTTP ${factory.statusCode}`);
      assert.equal(grpcCodeOf(factory()), want, `${factory.code} (${factory.statusCode})`);
    }
  });
});

describe('gRPC: inference', () => {
  it('answers FP32 raw_input_contents as HTTP v2 does (to 1e-5), and typed fp32_contents as raw', async (t) => {
    const { app, inference } = await grpcApp(t);
    const input = items(2, 1);
    const http = await app.inject({
      method: 'POST',
      url: `/v2/models/${MODEL}/infer`,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ inputs: [{ name: 'input', shape: [2, 3, 32, 32], datatype: 'FP32', data: input }] }),
    });
    assert.equal(http.statusCode, 200, http.body);
    const httpLogits = (http.json() as { outputs: Array<{ data: number[] }> }).outputs[0]!.data;

    const raw = await unary<InferResponse>(inference, 'ModelInfer', fp32Request(input, { id: 'raw-1' }));
    assert.equal(raw.model_name, MODEL);
    assert.equal(raw.model_version, '1');
    assert.equal(raw.id, 'raw-1');
    assert.deepEqual(
      raw.outputs.map((o) => [o.name, o.datatype, o.shape]),
      [['logits', 'FP32', [2, 10]]],
    );
    assert.equal(raw.raw_output_contents.length, 1);
    const rawLogits = readFp32(raw.raw_output_contents[0]!);
    assert.equal(rawLogits.length, 20);
    rawLogits.forEach((v, i) => assert.ok(Math.abs(v - httpLogits[i]!) <= 1e-5, `logit ${i}: gRPC ${v}, HTTP ${httpLogits[i]}`));

    const typed = await unary<InferResponse>(inference, 'ModelInfer', {
      model_name: MODEL,
      inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 3, 32, 32], contents: { fp32_contents: input } }],
    });
    assert.equal(typed.id, '');
    assert.deepEqual(typed.outputs, raw.outputs);
    assert.deepEqual(typed.raw_output_contents[0], raw.raw_output_contents[0], 'typed contents answer exactly as raw');
  });

  it('classifies a raw BYTES PNG (chelsea.png → 3, cat), raw and typed alike', async (t) => {
    const { inference } = await grpcApp(t);
    const png = await photo('chelsea.png');
    const raw = await unary<InferResponse>(inference, 'ModelInfer', bytesRequest([png]));
    assert.deepEqual(
      raw.outputs.map((o) => [o.name, o.datatype, o.shape]),
      [['logits', 'FP32', [1, 10]]],
    );
    const logits = readFp32(raw.raw_output_contents[0]!);
    assert.equal(argmax(logits), 3);

    const typed = await unary<InferResponse>(inference, 'ModelInfer', {
      model_name: MODEL,
      inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [png] } }],
    });
    assert.deepEqual(typed.raw_output_contents[0], raw.raw_output_contents[0]);
  });

  it("sends a ModelInfer answer's Server-Timing as its server-timing trailer: the stages, and with the cache on a miss, then a hit", async (t) => {
    const { inference } = await grpcApp(t, { RESPONSE_CACHE_MAX_BYTES: '1048576' });
    const png = await photo('chelsea.png');
    const trailerOf = async () => {
      const { call, response } = startUnary<InferResponse>(inference, 'ModelInfer', bytesRequest([png]));
      const trailer = new Promise<string>((resolve) => call.on('status', (s: grpc.StatusObject) => resolve(String(s.metadata.get('server-timing')[0]))));
      assert.equal(argmax(readFp32((await response).raw_output_contents[0]!)), 3);
      return trailer;
    };
    const first = await trailerOf();
    assert.match(first, /^preprocess;dur=\d+\.\d, queue;dur=\d+\.\d, infer;dur=\d+\.\d, postprocess;dur=\d+\.\d, cache;desc=miss, total;dur=\d+\.\d$/);
    assert.match(await trailerOf(), /cache;desc=hit, total;dur=/);
  });

  it('answers classification (int64_param 3) as BYTES [1, 3] in raw_output_contents, highest first', async (t) => {
    const { inference } = await grpcApp(t);
    const png = await photo('chelsea.png');
    const answer = await unary<InferResponse>(
      inference,
      'ModelInfer',
      bytesRequest([png], { outputs: [{ name: 'logits', parameters: { classification: { int64_param: 3 } } }] }),
    );
    assert.deepEqual(
      answer.outputs.map((o) => [o.name, o.datatype, o.shape]),
      [['logits', 'BYTES', [1, 3]]],
    );
    const classes = readBytesElements(answer.raw_output_contents[0]!);
    assert.equal(classes.length, 3);
    assert.match(classes[0]!, /^-?\d+\.\d{6}:3:cat$/);
    const values = classes.map((s) => Number(s.split(':')[0]));
    assert.deepEqual(
      values,
      [...values].sort((a, b) => b - a),
    );
  });

  it('answers server and model metadata, liveness and readiness', async (t) => {
    const { inference } = await grpcApp(t);
    assert.deepEqual(await unary(inference, 'ServerLive', {}), { live: true });
    assert.deepEqual(await unary(inference, 'ServerReady', {}), { ready: true });
    assert.deepEqual(await unary(inference, 'ModelReady', { name: MODEL }), { ready: true });
    assert.deepEqual(await unary(inference, 'ModelReady', { name: MODEL, version: '1' }), { ready: true });
    assert.deepEqual(await unary(inference, 'ModelReady', { name: MODEL, version: '2' }), { ready: false });
    assert.deepEqual(await unary(inference, 'ModelReady', { name: 'nope' }), { ready: false });
    const server = await unary<{ name: string; extensions: string[] }>(inference, 'ServerMetadata', {});
    assert.equal(server.name, 'resnet-serve');
    assert.ok(server.extensions.includes('classification'));
    const meta = await unary<{ name: string; versions: string[]; inputs: unknown[]; outputs: unknown[] }>(inference, 'ModelMetadata', { name: MODEL });
    assert.equal(meta.name, MODEL);
    assert.deepEqual(meta.versions, ['1']);
    assert.deepEqual(meta.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 3, 32, 32] }]);
    assert.deepEqual(meta.outputs, [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }]);
    await expectStatus(unary(inference, 'ModelMetadata', { name: 'nope' }), status.NOT_FOUND, 'MODEL_NOT_FOUND');
    await expectStatus(unary(inference, 'ModelStatistics', { name: 'nope' }), status.NOT_FOUND, 'MODEL_NOT_FOUND');
    const stats = await unary<{ model_stats: Array<{ name: string; version: string; inference_count: number }> }>(inference, 'ModelStatistics', {});
    assert.deepEqual(
      stats.model_stats.map((m) => [m.name, m.version, m.inference_count]),
      [[MODEL, '1', 0]],
    );
  });
});

describe('gRPC: malformed inputs', () => {
  it('refuses each with INVALID_ARGUMENT or NOT_FOUND and its catalog code, and serves on', async (t) => {
    const { inference } = await grpcApp(t);
    const one = items(1);
    const png = await cifar('cat_0002.jpg');
    const chelsea = await photo('chelsea.png');
    const fp32Input = { name: 'input', datatype: 'FP32', shape: [1, 3, 32, 32] };
    const cases: Array<[string, unknown, grpc.status, string]> = [
      [
        'FP32 raw bytes one value short of the shape',
        { model_name: MODEL, inputs: [fp32Input], raw_input_contents: [fp32Bytes(one).subarray(4)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'FP32 raw bytes not a multiple of 4',
        { model_name: MODEL, inputs: [fp32Input], raw_input_contents: [Buffer.concat([fp32Bytes(one), Buffer.from([0])])] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'FP32 shape of two items, bytes of one',
        { model_name: MODEL, inputs: [{ ...fp32Input, shape: [2, 3, 32, 32] }], raw_input_contents: [fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'BYTES shape [2], one element',
        { model_name: MODEL, inputs: [{ name: 'image', datatype: 'BYTES', shape: [2] }], raw_input_contents: [bytesElements([png])] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'BYTES element length past the end',
        { model_name: MODEL, inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesElements([png]).subarray(0, 100)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'BYTES length prefix cut off',
        { model_name: MODEL, inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [Buffer.from([1, 0])] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'FP32 raw bytes declared as BYTES',
        { model_name: MODEL, inputs: [{ ...fp32Input, datatype: 'BYTES', shape: [1] }], raw_input_contents: [fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'both raw and typed contents',
        { model_name: MODEL, inputs: [{ ...fp32Input, contents: { fp32_contents: one } }], raw_input_contents: [fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'two kinds of typed contents',
        { model_name: MODEL, inputs: [{ ...fp32Input, contents: { fp32_contents: one, int_contents: [1] } }] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'typed contents of an unsupported kind',
        { model_name: MODEL, inputs: [{ ...fp32Input, contents: { int_contents: one.map(() => 1) } }] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'typed fp32_contents one value short',
        { model_name: MODEL, inputs: [{ ...fp32Input, contents: { fp32_contents: one.slice(1) } }] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'typed bytes_contents more than the shape',
        { model_name: MODEL, inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [png, png] } }] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'unknown datatype FP16',
        { model_name: MODEL, inputs: [{ ...fp32Input, datatype: 'FP16' }], raw_input_contents: [Buffer.alloc(ITEM_VALUES * 2)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'made-up datatype',
        { model_name: MODEL, inputs: [{ ...fp32Input, datatype: 'QUATERNION' }], raw_input_contents: [fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'no datatype',
        { model_name: MODEL, inputs: [{ ...fp32Input, datatype: '' }], raw_input_contents: [fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'raw_input_contents for two inputs, one input',
        { model_name: MODEL, inputs: [fp32Input], raw_input_contents: [fp32Bytes(one), fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      ['no contents at all', { model_name: MODEL, inputs: [fp32Input] }, status.INVALID_ARGUMENT, 'INVALID_TENSOR'],
      ['no inputs', { model_name: MODEL }, status.INVALID_ARGUMENT, 'INVALID_TENSOR'],
      [
        'two inputs',
        { model_name: MODEL, inputs: [fp32Input, fp32Input], raw_input_contents: [fp32Bytes(one), fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'FP32 of the wrong item shape',
        { model_name: MODEL, inputs: [{ ...fp32Input, shape: [1, 3, 16, 64] }], raw_input_contents: [fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'FP32 to a wrong input name',
        { model_name: MODEL, inputs: [{ ...fp32Input, name: 'pixels' }], raw_input_contents: [fp32Bytes(one)] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'FP32 holding NaN',
        { model_name: MODEL, inputs: [fp32Input], raw_input_contents: [fp32Bytes(one.map((v, i) => (i === 7 ? NaN : v)))] },
        status.INVALID_ARGUMENT,
        'INVALID_TENSOR',
      ],
      [
        'BYTES that are no image',
        {
          model_name: MODEL,
          inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }],
          raw_input_contents: [bytesElements([Buffer.from('not an image at all')])],
        },
        status.INVALID_ARGUMENT,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
      ['a PNG cut in half', bytesRequest([chelsea.subarray(0, chelsea.length >> 1)]), status.INVALID_ARGUMENT, 'INVALID_IMAGE'],
      ['an output the model lacks', fp32Request(one, { outputs: [{ name: 'probabilities' }] }), status.INVALID_ARGUMENT, 'INVALID_REQUEST'],
      [
        'classification 0',
        fp32Request(one, { outputs: [{ name: 'logits', parameters: { classification: { int64_param: 0 } } }] }),
        status.INVALID_ARGUMENT,
        'INVALID_REQUEST',
      ],
      [
        'classification as a string',
        fp32Request(one, { outputs: [{ name: 'logits', parameters: { classification: { string_param: '3' } } }] }),
        status.INVALID_ARGUMENT,
        'INVALID_REQUEST',
      ],
      ['an unknown model', { ...fp32Request(one), model_name: 'nope' }, status.NOT_FOUND, 'MODEL_NOT_FOUND'],
      ['a version the model lacks', { ...fp32Request(one), model_version: '2' }, status.NOT_FOUND, 'MODEL_NOT_FOUND'],
    ];
    for (const [what, request, code, catalogCode] of cases) {
      const err = await expectStatus(unary(inference, 'ModelInfer', request), code, catalogCode).catch((e: Error) => assert.fail(`${what}: ${e.message}`));
      assert.ok(err.details.length > 0, `${what}: a message`);
    }
    const ok = await unary<InferResponse>(inference, 'ModelInfer', fp32Request(one));
    assert.deepEqual(ok.outputs[0]!.shape, [1, 10], 'the server serves on');
  });

  it('refuses a message above the largest body with RESOURCE_EXHAUSTED, images above the limits with their catalog codes', async (t) => {
    // Largest message: max(UPLOAD_MAX_BYTES, JSON_BODY_MAX_BYTES) + 64 KiB = 165,536 bytes.
    const { clients } = await grpcApp(t, {
      UPLOAD_MAX_BYTES: '100000',
      JSON_BODY_MAX_BYTES: '100000',
      BODY_MEMORY_BUDGET_BYTES: '100000',
      MAX_IMAGES_PER_REQUEST: '2',
    });
    const { inference } = clients({ 'grpc.max_send_message_length': -1 });
    const big = Buffer.alloc(200_000, 1);
    const refused = await expectStatus(unary(inference, 'ModelInfer', bytesRequest([big])), status.RESOURCE_EXHAUSTED);
    assert.equal(errorCode(refused), undefined, 'refused by grpc-js before the message is parsed');

    // Under the message limit, over UPLOAD_MAX_BYTES of images.
    await expectStatus(unary(inference, 'ModelInfer', bytesRequest([Buffer.alloc(120_000, 1)])), status.RESOURCE_EXHAUSTED, 'PAYLOAD_TOO_LARGE');
    const png = await cifar('cat_0002.jpg');
    await expectStatus(unary(inference, 'ModelInfer', bytesRequest([png, png, png])), status.RESOURCE_EXHAUSTED, 'TOO_MANY_IMAGES');
    await expectStatus(unary(inference, 'ModelInfer', fp32Request(items(3))), status.RESOURCE_EXHAUSTED, 'TOO_MANY_IMAGES');

    const ok = await unary<InferResponse>(inference, 'ModelInfer', bytesRequest([png, png]));
    assert.deepEqual(ok.outputs[0]!.shape, [2, 10], 'the channel serves on');
  });
});

describe('gRPC: request ids, keys and rate limit', () => {
  it('takes the request id from x-request-id metadata when well-formed, and replaces a malformed one', async (t) => {
    const { inference, logs } = await grpcApp(t);
    const bad = fp32Request(items(1), { model_name: 'nope' });
    await expectStatus(unary(inference, 'ModelInfer', bad, { metadata: { 'x-request-id': 'client-id.42' } }), status.NOT_FOUND);
    await expectStatus(unary(inference, 'ModelInfer', bad, { metadata: { 'x-request-id': 'not a valid id!' } }), status.NOT_FOUND);
    await unary(inference, 'ModelInfer', fp32Request(items(1)), { metadata: { 'x-request-id': 'ok-id' } });
    const lines = logs.filter((l) => l.method === 'ModelInfer');
    assert.equal(lines.length, 3, JSON.stringify(logs));
    assert.equal(lines[0]!.requestId, 'client-id.42');
    assert.equal(lines[0]!.code, 'MODEL_NOT_FOUND');
    assert.match(String(lines[1]!.requestId), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a malformed id is replaced by a UUID');
    assert.equal(lines[2]!.requestId, 'ok-id');
    assert.equal(lines[2]!.code, 'OK');
  });

  it('requires authorization: Bearer <key> when API_KEYS is set; health and liveness stay open', async (t) => {
    const { inference, health } = await grpcApp(t, { API_KEYS: 'first-key,second-key' });
    const request = fp32Request(items(1));
    const missing = await expectStatus(unary(inference, 'ModelInfer', request), status.UNAUTHENTICATED, 'UNAUTHORIZED');
    assert.doesNotMatch(missing.details, /first-key|second-key/);
    await expectStatus(unary(inference, 'ModelInfer', request, { metadata: { authorization: 'Bearer wrong-key' } }), status.UNAUTHENTICATED, 'UNAUTHORIZED');
    await expectStatus(unary(inference, 'ModelInfer', request, { metadata: { authorization: 'first-key' } }), status.UNAUTHENTICATED, 'UNAUTHORIZED');
    await expectStatus(unary(inference, 'ModelMetadata', { name: MODEL }), status.UNAUTHENTICATED, 'UNAUTHORIZED');
    await expectStatus(unary(inference, 'ModelStatistics', {}), status.UNAUTHENTICATED, 'UNAUTHORIZED');
    const stream = openStream(inference, 'ModelStreamInfer');
    stream.call.write(request);
    stream.call.end();
    const streamStatus = await stream.status;
    assert.equal(streamStatus.code, status.UNAUTHENTICATED, streamStatus.details);
    assert.equal(streamStatus.metadata.get('error-code')[0], 'UNAUTHORIZED');
    assert.equal(stream.messages.length, 0);

    for (const key of ['first-key', 'second-key']) {
      const ok = await unary<InferResponse>(inference, 'ModelInfer', request, { metadata: { authorization: `Bearer ${key}` } });
      assert.deepEqual(ok.outputs[0]!.shape, [1, 10]);
    }
    assert.deepEqual(await unary(health, 'Check', { service: '' }), { status: 'SERVING' });
    assert.deepEqual(await unary(inference, 'ServerLive', {}), { live: true });
    assert.deepEqual(await unary(inference, 'ServerReady', {}), { ready: true });
  });

  it('limits calls per peer: RESOURCE_EXHAUSTED RATE_LIMITED with retry-after; health stays open', async (t) => {
    const { inference, health, clients } = await grpcApp(t, { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '600000' });
    for (let i = 0; i < 3; i++) await unary(inference, 'ServerMetadata', {});
    const limited = await expectStatus(unary(inference, 'ModelInfer', fp32Request(items(1))), status.RESOURCE_EXHAUSTED, 'RATE_LIMITED');
    assert.ok(Number(limited.metadata.get('retry-after')[0]) >= 1, 'retry-after in seconds');
    // Per peer address, not per channel: another connection from the same host is limited too.
    await expectStatus(unary(clients().inference, 'ServerMetadata', {}), status.RESOURCE_EXHAUSTED, 'RATE_LIMITED');
    const stream = openStream(inference, 'ModelStreamInfer');
    stream.call.end();
    const streamStatus = await stream.status;
    assert.equal(streamStatus.code, status.RESOURCE_EXHAUSTED);
    assert.equal(streamStatus.metadata.get('error-code')[0], 'RATE_LIMITED');
    assert.deepEqual(await unary(health, 'Check', { service: '' }), { status: 'SERVING' });
    assert.deepEqual(await unary(inference, 'ServerLive', {}), { live: true });
  });
});

describe('gRPC: back-pressure, deadlines and cancellation (gated worker)', () => {
  it('fails a call whose client deadline passes while queued with DEADLINE_EXCEEDED, and never runs it', async (t) => {
    const { app, inference, gate, events } = await grpcApp(t, { BATCH_MAX_SIZE: '1' }, { gated: true });
    const model = app.serving.registry.get(MODEL);
    await gate('close');
    const blocker = unary<InferResponse>(inference, 'ModelInfer', fp32Request(items(1)));
    await until(() => model.batcher.inflightBatches === 1, 'the blocker is running');
    const late = startUnary(inference, 'ModelInfer', fp32Request(items(2)), { deadline: Date.now() + 100 });
    // The client's deadline and the server's (the same instant) race: either answers it.
    await expectStatus(late.response, status.DEADLINE_EXCEEDED);
    await until(() => model.batcher.queueDepth === 0, 'its two items left the queue');
    await gate('open');
    assert.deepEqual((await blocker).outputs[0]!.shape, [1, 10]);
    assert.deepEqual(await batchesRun(events), [1], 'only the blocker ran');
    const stats = await unary<{ model_stats: Array<{ name: string; execution_count: number; inference_count: number }> }>(inference, 'ModelStatistics', {
      name: MODEL,
    });
    assert.deepEqual(
      stats.model_stats.map((s) => [s.name, s.execution_count, s.inference_count]),
      [[MODEL, 1, 1]],
    );
    assert.equal(await metricValue(app, /^inference_compute_duration_seconds_count\{model="resnet20",version="1"\} (\d+)/m), 1);
    assert.equal((await requestsTotal(app, 'timeout')) + (await requestsTotal(app, 'cancelled')), 1, 'counted once, as timed out or cancelled');
  });

  it('answers DEADLINE_EXCEEDED with error-code from REQUEST_TIMEOUT_MS, which a longer client deadline never raises', async (t) => {
    const { app, inference, gate } = await grpcApp(t, { BATCH_MAX_SIZE: '1', REQUEST_TIMEOUT_MS: '50' }, { gated: true });
    await gate('close');
    await expectStatus(
      unary(inference, 'ModelInfer', fp32Request(items(1)), { deadline: Date.now() + 600_000 }),
      status.DEADLINE_EXCEEDED,
      'DEADLINE_EXCEEDED',
    );
    await expectStatus(unary(inference, 'ModelInfer', fp32Request(items(1))), status.DEADLINE_EXCEEDED, 'DEADLINE_EXCEEDED');
    await gate('open');
    await until(() => app.serving.registry.get(MODEL).batcher.queueDepth === 0, 'nothing is left queued');
  });

  it('removes the queued items of a cancelled call before they run', async (t) => {
    const { app, inference, gate, events } = await grpcApp(t, { BATCH_MAX_SIZE: '1' }, { gated: true });
    const model = app.serving.registry.get(MODEL);
    await gate('close');
    const blocker = unary<InferResponse>(inference, 'ModelInfer', fp32Request(items(1)));
    await until(() => model.batcher.inflightBatches === 1, 'the blocker is running');
    const queued = startUnary(inference, 'ModelInfer', fp32Request(items(2)));
    await until(() => model.batcher.queueDepth === 2, 'the second call is queued');
    queued.call.cancel();
    await expectStatus(queued.response, status.CANCELLED);
    await until(() => model.batcher.queueDepth === 0, 'its items left the queue');
    await gate('open');
    assert.deepEqual((await blocker).outputs[0]!.shape, [1, 10]);
    assert.deepEqual(await batchesRun(events), [1], 'the cancelled items never ran');
    assert.equal(await requestsTotal(app, 'cancelled'), 1);
  });

  it('removes the queued items of a cancelled stream before they run', async (t) => {
    const { app, inference, gate, events } = await grpcApp(t, { BATCH_MAX_SIZE: '1' }, { gated: true });
    const model = app.serving.registry.get(MODEL);
    await gate('close');
    const stream = openStream(inference, 'ModelStreamInfer');
    stream.call.write(fp32Request(items(1), { id: 'running' }));
    await until(() => model.batcher.inflightBatches === 1, 'the first request is running');
    stream.call.write(fp32Request(items(3), { id: 'queued' }));
    await until(() => model.batcher.queueDepth === 3, 'the second request is queued');
    stream.call.cancel();
    assert.equal((await stream.status).code, status.CANCELLED);
    await until(() => model.batcher.queueDepth === 0, 'its items left the queue');
    await gate('open');
    assert.deepEqual(await batchesRun(events), [1], 'the queued request never ran');
  });

  it('refuses a call the queue cannot take with UNAVAILABLE QUEUE_FULL and retry-after', async (t) => {
    const { app, inference, gate } = await grpcApp(t, { QUEUE_MAX_SIZE: '4', MAX_IMAGES_PER_REQUEST: '4', BATCH_MAX_SIZE: '1' }, { gated: true });
    const model = app.serving.registry.get(MODEL);
    await gate('close');
    const first = unary<InferResponse>(inference, 'ModelInfer', fp32Request(items(4)));
    await until(() => model.batcher.queueDepth === 3 && model.batcher.inflightBatches === 1, 'one item running, three queued');
    const refused = await expectStatus(unary(inference, 'ModelInfer', fp32Request(items(2))), status.UNAVAILABLE, 'QUEUE_FULL');
    assert.equal(refused.metadata.get('retry-after')[0], '1');
    assert.equal(model.batcher.queueDepth, 3, 'the refused call left nothing in the queue');
    await gate('open');
    assert.deepEqual((await first).outputs[0]!.shape, [4, 10]);
  });

  it('fails only the batch of a crashed worker with INTERNAL INFERENCE_FAILED, no internals in the message, then serves again', async (t) => {
    const { app, inference, gate } = await grpcApp(t, { BATCH_MAX_SIZE: '1' }, { gated: true });
    const model = app.serving.registry.get(MODEL);
    await gate('close');
    const running = unary(inference, 'ModelInfer', fp32Request(items(1)));
    await until(() => model.batcher.inflightBatches === 1, 'the call is running on the worker');
    crashGatedWorkers();
    const failed = await expectStatus(running, status.INTERNAL, 'INFERENCE_FAILED');
    assert.doesNotMatch(failed.details, /exit code|worker\.js|\/work\//, 'no internals in the answer');
    // The replacement worker starts with its gate open.
    const next = await unary<InferResponse>(inference, 'ModelInfer', fp32Request(items(1)));
    assert.deepEqual(next.outputs[0]!.shape, [1, 10]);
  });

  it('drains: NOT_SERVING at once, calls served until intake stops, then UNAVAILABLE SHUTTING_DOWN; in-flight calls complete', async (t) => {
    const { app, inference, health, gate } = await grpcApp(t, { BATCH_MAX_SIZE: '1' }, { gated: true });
    const model = app.serving.registry.get(MODEL);
    const watch = openStream(health, 'Watch', { service: '' });
    assert.deepEqual(await watch.received(1), [{ status: 'SERVING' }]);
    await gate('close');
    const running = unary<InferResponse>(inference, 'ModelInfer', fp32Request(items(1)));
    await until(() => model.batcher.inflightBatches === 1, 'a call is running');

    // What the entry point does on SIGTERM: readiness first, intake stops after SHUTDOWN_DELAY_MS.
    app.serving.lifecycle.draining = true;
    assert.deepEqual(await unary(health, 'Check', { service: '' }), { status: 'NOT_SERVING' });
    assert.deepEqual(await unary(health, 'Check', { service: 'inference.GRPCInferenceService' }), { status: 'NOT_SERVING' });
    assert.deepEqual(await unary(health, 'Check', { service: 'liveness' }), { status: 'SERVING' });
    assert.deepEqual(await unary(inference, 'ServerReady', {}), { ready: false });
    assert.deepEqual(await watch.received(2), [{ status: 'SERVING' }, { status: 'NOT_SERVING' }]);
    const duringDelay = unary<InferResponse>(inference, 'ModelInfer', fp32Request(items(1)));
    await until(() => model.batcher.queueDepth === 1, 'a call during the delay is queued');

    const drained = app.serving.drain();
    const refused = await expectStatus(unary(inference, 'ModelInfer', fp32Request(items(1))), status.UNAVAILABLE, 'SHUTTING_DOWN');
    assert.equal(refused.metadata.get('retry-after')[0], '1');
    await gate('open');
    assert.deepEqual((await running).outputs[0]!.shape, [1, 10]);
    assert.deepEqual((await duringDelay).outputs[0]!.shape, [1, 10]);
    await drained;
    watch.call.cancel();
  });
});

describe('gRPC: ModelStreamInfer', () => {
  it('answers 10 requests in order with their ids; an error answers its request only', async (t) => {
    const { inference } = await grpcApp(t);
    const inputs = Array.from({ length: 10 }, (_, i) => items(1, i + 10));
    const expected = await Promise.all(inputs.map((v) => unary<InferResponse>(inference, 'ModelInfer', fp32Request(v))));
    const stream = openStream(inference, 'ModelStreamInfer');
    inputs.forEach((v, i) => {
      const request =
        i === 4 ? fp32Request(v, { id: `r${i}`, inputs: [{ name: 'input', datatype: 'FP16', shape: [1, 3, 32, 32] }] }) : fp32Request(v, { id: `r${i}` });
      stream.call.write(request);
    });
    stream.call.end();
    const answers = (await stream.received(10)) as StreamAnswer[];
    const end = await stream.status;
    assert.equal(end.code, status.OK, end.details);
    assert.equal(answers.length, 10);
    assert.deepEqual(
      answers.map((a) => a.infer_response.id),
      inputs.map((_, i) => `r${i}`),
      'in order, with ids',
    );
    answers.forEach((a, i) => {
      if (i === 4) {
        assert.match(a.error_message, /FP16/);
        assert.deepEqual(a.infer_response.raw_output_contents, []);
        return;
      }
      assert.equal(a.error_message, '', `r${i}`);
      assert.equal(a.infer_response.model_name, MODEL);
      const got = readFp32(a.infer_response.raw_output_contents[0]!);
      const want = readFp32(expected[i]!.raw_output_contents[0]!);
      got.forEach((v, j) => assert.ok(Math.abs(v - want[j]!) <= 1e-5, `r${i} logit ${j}: stream ${v}, unary ${want[j]}`));
    });
  });

  it('ends a stream closed with no requests with OK and no answers', async (t) => {
    const { inference } = await grpcApp(t);
    const stream = openStream(inference, 'ModelStreamInfer');
    stream.call.end();
    const end = await stream.status;
    assert.equal(end.code, status.OK, end.details);
    assert.deepEqual(stream.messages, []);
  });

  it('holds more than ten requests of one stream in flight without a listener-leak warning', async (t) => {
    const { app, inference, gate } = await grpcApp(t, { BATCH_MAX_SIZE: '1' }, { gated: true });
    const model = app.serving.registry.get(MODEL);
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    await gate('close');
    const stream = openStream(inference, 'ModelStreamInfer');
    for (let i = 0; i < 24; i++) stream.call.write(fp32Request(items(1, i), { id: `s${i}` }));
    stream.call.end();
    await until(() => model.batcher.inflightBatches === 1 && model.batcher.queueDepth === 23, 'all 24 requests in flight at once');
    await gate('open');
    const answers = (await stream.received(24)) as StreamAnswer[];
    assert.equal((await stream.status).code, status.OK);
    assert.deepEqual(
      answers.map((a) => [a.infer_response.id, a.error_message]),
      answers.map((_, i) => [`s${i}`, '']),
    );
    // process 'warning' is emitted on a later tick than the listener that caused it.
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      warnings.map((w) => `${w.name}: ${w.message}`),
      [],
    );
  });
});

describe('gRPC: grpc.health.v1', () => {
  it('answers Check: SERVING when ready, liveness SERVING, an unknown service NOT_FOUND; Watch starts with the status', async (t) => {
    const { health } = await grpcApp(t);
    assert.deepEqual(await unary(health, 'Check', {}), { status: 'SERVING' });
    assert.deepEqual(await unary(health, 'Check', { service: 'inference.GRPCInferenceService' }), { status: 'SERVING' });
    assert.deepEqual(await unary(health, 'Check', { service: 'liveness' }), { status: 'SERVING' });
    await expectStatus(unary(health, 'Check', { service: 'nope' }), status.NOT_FOUND);
    const watch = openStream(health, 'Watch', { service: '' });
    assert.deepEqual(await watch.received(1), [{ status: 'SERVING' }]);
    const unknown = openStream(health, 'Watch', { service: 'nope' });
    assert.deepEqual(await unknown.received(1), [{ status: 'SERVICE_UNKNOWN' }]);
    watch.call.cancel();
    unknown.call.cancel();
  });

  it('is NOT_SERVING while models load (inference UNAVAILABLE MODEL_NOT_READY), then Watch turns SERVING', async (t) => {
    const { app, inference, health } = await grpcApp(t, {}, { load: false });
    assert.deepEqual(await unary(health, 'Check', { service: '' }), { status: 'NOT_SERVING' });
    assert.deepEqual(await unary(health, 'Check', { service: 'liveness' }), { status: 'SERVING' });
    assert.deepEqual(await unary(inference, 'ServerReady', {}), { ready: false });
    await expectStatus(unary(inference, 'ModelInfer', fp32Request(items(1))), status.UNAVAILABLE, 'MODEL_NOT_READY');
    const watch = openStream(health, 'Watch', { service: '' });
    assert.deepEqual(await watch.received(1), [{ status: 'NOT_SERVING' }]);
    await app.serving.registry.load();
    assert.deepEqual(await watch.received(2), [{ status: 'NOT_SERVING' }, { status: 'SERVING' }]);
    assert.deepEqual(await unary(health, 'Check', { service: '' }), { status: 'SERVING' });
    watch.call.cancel();
  });
});
