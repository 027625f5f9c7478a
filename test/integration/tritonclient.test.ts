/**
 * NVIDIA's own Python client, unmodified and in its default modes, against the real server with
 * the shared ResNet-20:
 * - tritonclient.http and .aio: every call in tritonclient/check_http.py (health, metadata,
 *   versioned readiness, FP32 in binary and JSON, outputs in binary and JSON, BYTES raw PNG and
 *   base64 JSON, classification, gzip both ways, unknown model, wrong shape, statistics);
 * - tritonclient.grpc: every call in tritonclient/check_grpc.py (health, metadata, FP32, BYTES
 *   raw PNG, classification, a stream of 10 in order, unknown model, deadlines, API keys,
 *   statistics, grpc.health.v1), with the server's protos first checked field by field against
 *   the descriptors generated into the client (check_proto.py).
 * The FP32 logits must equal onnxruntime's direct run to 1e-5 in every mode. The client needs
 * Debian's python3 packages (.ci/run installs them); without them these tests say so and skip,
 * but in CI (`CI=true`) they fail.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { SERVER_VERSION } from '../../src/app.js';
import { startGrpcServer } from '../../src/grpc/server.js';
import { PHOTOS_DIR, resnet20App, testConfig } from '../helpers.js';
import { gatedApp, until } from './gated-app.js';
import { listen } from './hostile-support.js';
import { clientMissing, expectedLogits, needsClient, runCheck } from './tritonclient-support.js';

const why = clientMissing();

/** One FP32 item for the gated model `m`, over HTTP: it holds the worker while the gate is shut. */
function fetchBlocker(app: FastifyInstance): Promise<unknown> {
  const payload = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 3, 32, 32], datatype: 'FP32', data: new Array(3 * 32 * 32).fill(0) }] });
  return app.inject({ method: 'POST', url: '/v2/models/m/infer', headers: { 'content-type': 'application/json' }, payload });
}

async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tritonclient-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('tritonclient, unmodified, default modes', () => {
  it('can run here', needsClient(why), () => {
    assert.equal(why, undefined, why);
  });

  it('HTTP (sync and aio): every call passes, logits equal to onnxruntime direct to 1e-5', needsClient(why), async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const dir = await scratch(t);
    const logits = await expectedLogits(dir);
    await runCheck(
      t,
      'check_http.py',
      ['--url', `127.0.0.1:${port}`, '--model', 'resnet20', '--png', join(PHOTOS_DIR, 'chelsea.png'), '--expected-logits', logits, '--tolerance', '1e-5'],
      dir,
      30,
    );
  });

  it("gRPC: the protos match the client's descriptors field by field", needsClient(why), async (t) => {
    await runCheck(t, 'check_proto.py', [], await scratch(t), 10);
  });

  it('gRPC: every call passes, with API keys, logits equal to onnxruntime direct to 1e-5', needsClient(why), async (t) => {
    const key = 'grpc-test-key-0123456789';
    const app = await resnet20App(t, { API_KEYS: key });
    const { registry, lifecycle, dataPlane } = app.serving;
    const config = testConfig('/nonexistent', { API_KEYS: key });
    const grpc = await startGrpcServer({ config, registry, lifecycle, ...dataPlane, version: SERVER_VERSION, log: app.log }, '127.0.0.1', 0);
    t.after(() => grpc.close(1000));
    const dir = await scratch(t);
    const logits = await expectedLogits(dir);
    await runCheck(
      t,
      'check_grpc.py',
      [
        '--url',
        `127.0.0.1:${grpc.port}`,
        '--model',
        'resnet20',
        '--png',
        join(PHOTOS_DIR, 'chelsea.png'),
        '--expected-logits',
        logits,
        '--tolerance',
        '1e-5',
        '--api-key',
        key,
      ],
      dir,
      30,
    );
  });

  it('gRPC: client_timeout smaller than the work → DEADLINE_EXCEEDED, and the queued work is dropped', needsClient(why), async (t) => {
    // The gated stand-in worker holds every batch while its gate is shut, so the work surely
    // outlasts the client's deadline, whatever the machine's speed.
    const { app, gate, model } = await gatedApp(t, {});
    const { registry, lifecycle, dataPlane } = app.serving;
    const grpc = await startGrpcServer(
      { config: testConfig('/nonexistent'), registry, lifecycle, ...dataPlane, version: SERVER_VERSION, log: app.log },
      '127.0.0.1',
      0,
    );
    t.after(() => grpc.close(1000));
    await gate('close');
    // A first call takes the worker and is held there; the checked call then waits in the queue.
    const blocker = fetchBlocker(app);
    await until(() => model.batcher.inflightBatches === 1, 'the blocker runs');
    const computedBefore = dataPlane.statistics.snapshot([model])[0]!.execution_count;
    await runCheck(
      t,
      'check_grpc.py',
      [
        '--url',
        `127.0.0.1:${grpc.port}`,
        '--model',
        'm',
        '--png',
        join(PHOTOS_DIR, 'chelsea.png'),
        '--timeout-check',
        '--client-timeout',
        '0.5',
        '--only',
        'client_timeout',
      ],
      await scratch(t),
      1,
    );
    await until(() => model.batcher.queueDepth === 0, 'the timed-out work left the queue');
    await gate('open');
    await blocker;
    // Only the blocker ran: the timed-out request never reached the worker.
    assert.equal(dataPlane.statistics.snapshot([model])[0]!.execution_count, computedBefore + 1);
  });
});
