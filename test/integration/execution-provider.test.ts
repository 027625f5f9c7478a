/**
 * On this GPU-less machine (onnxruntime-node without its CUDA libraries): the real server
 * process refuses to start with EXECUTION_PROVIDER=cuda, with a clear message, and starts on
 * CPU with EXECUTION_PROVIDER=auto, saying so in its log, metadata and metrics.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import request from 'supertest';
import { REPO_ROOT, RESNET20_CONFIG, RESNET20_DIR, startApp, tempRepository } from '../helpers.js';

describe('execution provider on a machine without CUDA', () => {
  it('EXECUTION_PROVIDER=cuda stops startup with a message naming CUDA and how to install it', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'server.js')], {
      env: {
        PATH: process.env.PATH,
        HOST: '127.0.0.1',
        PORT: '0',
        GRPC_PORT: '0',
        MODEL_REPOSITORY: repo,
        SEED_DEFAULT_MODEL: 'false',
        EXECUTION_PROVIDER: 'cuda',
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 1);
    assert.match(stderr, /Startup failed: EXECUTION_PROVIDER=cuda: the CUDA execution provider could not be created for .*resnet20\/model\.onnx/);
    assert.match(stderr, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });

  it('EXECUTION_PROVIDER=auto starts on CPU and reports the provider in use', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const app = await startApp(t, repo, { EXECUTION_PROVIDER: 'auto' });
    const model = app.serving.registry.get('resnet20');
    assert.equal(model.executionProvider, 'cpu');
    assert.equal(model.maxBatchSize, 4, 'BATCH_MAX_SIZE from the test config');
    assert.equal((await request(app.server).get('/v1/models/resnet20')).body.execution_provider, 'cpu');
    assert.equal((await request(app.server).get('/v2/models/resnet20')).body.parameters.execution_provider, 'cpu');
    const metrics = await app.serving.metrics.render(undefined);
    assert.match(metrics.body, /^model_info\{model="resnet20",version="1",execution_provider="cpu",sha256="[0-9a-f]{64}"\} 1$/m);
  });

  it('without BATCH_MAX_SIZE, a CPU model batches at the CPU default', async (t) => {
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const app = await startApp(t, repo, { EXECUTION_PROVIDER: 'auto', BATCH_MAX_SIZE: '' });
    assert.equal(app.serving.registry.get('resnet20').maxBatchSize, 8);
  });
});
