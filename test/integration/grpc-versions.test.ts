/**
 * Model versions over gRPC, with the shared trained ResNet-20 served as versions 1 and 2
 * (`{"all": {}}`): ModelInfer's `model_version` picks one, an empty one the highest, and one
 * not served is NOT_FOUND with the catalog's MODEL_NOT_FOUND; ModelMetadata lists both,
 * ModelReady and ModelStatistics take the version. The app and server are set up here rather
 * than with grpcApp (which serves a flat model): the clients and framing are grpc-support's.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { status } from '@grpc/grpc-js';
import { buildApp, SERVER_VERSION } from '../../src/app.js';
import { startGrpcServer } from '../../src/grpc/server.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository, testConfig } from '../helpers.js';
import { argmax, connect, expectStatus, fp32Request, items, MODEL, readFp32, unary, type InferResponse } from './grpc-support.js';

/** Longest the gRPC server may wait for calls still open when a test ends, in ms. */
const CLOSE_TIMEOUT_MS = 2_000;

async function versionedGrpcApp(t: TestContext) {
  const repo = await tempRepository(t, [
    { name: MODEL, from: RESNET20_DIR, config: { ...RESNET20_CONFIG, version_policy: { all: {} } }, versions: ['1', '2'] },
  ]);
  const config = testConfig(repo);
  const app = await buildApp(config, { defaultMetrics: false });
  const quiet = () => {};
  const { registry, lifecycle, dataPlane } = app.serving;
  let close = async () => {};
  t.after(async () => {
    await close();
    await app.close();
  });
  await app.ready();
  await registry.load();
  const server = await startGrpcServer(
    { config, registry, lifecycle, ...dataPlane, version: SERVER_VERSION, log: { info: quiet, error: quiet, debug: quiet } },
    '127.0.0.1',
    0,
  );
  const { inference } = connect(`127.0.0.1:${server.port}`);
  close = async () => {
    inference.close();
    await server.close(CLOSE_TIMEOUT_MS);
  };
  return { app, inference };
}

describe('gRPC: model versions', () => {
  it('infers with the version model_version names, the highest when it names none', async (t) => {
    const { inference } = await versionedGrpcApp(t);
    const values = items(1, 3);
    const answers = new Map<string, InferResponse>();
    for (const version of ['', '1', '2']) {
      const response = await unary<InferResponse>(inference, 'ModelInfer', fp32Request(values, { model_version: version }));
      assert.equal(response.model_name, MODEL);
      answers.set(version, response);
    }
    assert.equal(answers.get('')!.model_version, '2', 'no version: the highest served');
    assert.equal(answers.get('1')!.model_version, '1');
    assert.equal(answers.get('2')!.model_version, '2');
    // The same weights in both folders: the same logits, from each version's own session.
    const logits = [...answers.values()].map((r) => readFp32(r.raw_output_contents[0]!));
    assert.equal(logits[0]!.length, 10);
    assert.deepEqual(logits[1], logits[0]);
    assert.equal(argmax(logits[1]!), argmax(logits[2]!));
  });

  it('answers NOT_FOUND with MODEL_NOT_FOUND for a version not served, naming those that are', async (t) => {
    const { inference } = await versionedGrpcApp(t);
    const err = await expectStatus(unary(inference, 'ModelInfer', fp32Request(items(1), { model_version: '3' })), status.NOT_FOUND, 'MODEL_NOT_FOUND');
    assert.equal(err.details, 'Model resnet20 does not serve version "3"; it serves versions 2, 1');
    await expectStatus(unary(inference, 'ModelMetadata', { name: MODEL, version: '3' }), status.NOT_FOUND, 'MODEL_NOT_FOUND');
    assert.deepEqual(await unary(inference, 'ModelReady', { name: MODEL, version: '3' }), { ready: false });
  });

  it('lists every served version in ModelMetadata; ModelReady and ModelStatistics take a version', async (t) => {
    const { inference } = await versionedGrpcApp(t);
    const metadata = await unary<{ name: string; versions: string[] }>(inference, 'ModelMetadata', { name: MODEL });
    assert.deepEqual(metadata.versions, ['2', '1']);
    assert.deepEqual((await unary<{ versions: string[] }>(inference, 'ModelMetadata', { name: MODEL, version: '1' })).versions, ['2', '1']);
    assert.deepEqual(await unary(inference, 'ModelReady', { name: MODEL, version: '1' }), { ready: true });

    await unary(inference, 'ModelInfer', fp32Request(items(2), { model_version: '1' }));
    type Stats = { model_stats: Array<{ name: string; version: string; inference_count: number }> };
    const all = await unary<Stats>(inference, 'ModelStatistics', { name: MODEL });
    assert.deepEqual(
      all.model_stats.map((s) => [s.version, s.inference_count]),
      [
        ['2', 0],
        ['1', 2],
      ],
      'every served version, as Triton answers',
    );
    const one = await unary<Stats>(inference, 'ModelStatistics', { name: MODEL, version: '1' });
    assert.deepEqual(
      one.model_stats.map((s) => [s.version, s.inference_count]),
      [['1', 2]],
    );
  });
});
