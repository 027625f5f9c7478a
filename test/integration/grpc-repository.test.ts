/**
 * The repository rpcs (RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload) answer as
 * the HTTP routes do: explicit mode only (FAILED_PRECONDITION, MODEL_CONTROL_DISABLED,
 * otherwise), behind the API key, with the config override as a `string_param`.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { RESNET20_CONFIG, RESNET20_DIR } from '../helpers.js';
import { expectStatus, grpcApp, MODEL, unary } from './grpc-support.js';

interface IndexResponse {
  models: Array<{ name: string; version: string; state: string; reason: string }>;
}

describe('gRPC: the repository extension', () => {
  it('is refused unless MODEL_CONTROL_MODE=explicit', async (t) => {
    const { inference } = await grpcApp(t);
    for (const method of ['RepositoryIndex', 'RepositoryModelLoad', 'RepositoryModelUnload']) {
      await expectStatus(unary(inference, method, { model_name: MODEL }), status.FAILED_PRECONDITION, 'MODEL_CONTROL_DISABLED');
    }
    const meta = await unary<{ extensions: string[] }>(inference, 'ServerMetadata', {});
    assert.ok(!meta.extensions.includes('model_repository'));
  });

  it('indexes, unloads and loads with a config override, behind the API key', async (t) => {
    const key = { metadata: { authorization: 'Bearer k1' } };
    const { app, inference, repository } = await grpcApp(t, { MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: '*', API_KEYS: 'k1' });
    await expectStatus(unary(inference, 'RepositoryModelUnload', { model_name: MODEL }), status.UNAUTHENTICATED, 'UNAUTHORIZED');
    const meta = await unary<{ extensions: string[] }>(inference, 'ServerMetadata', {}, key);
    assert.ok(meta.extensions.includes('model_repository'));

    const ready = await unary<IndexResponse>(inference, 'RepositoryIndex', { ready: true }, key);
    assert.deepEqual(ready.models, [{ name: MODEL, version: '1', state: 'READY', reason: '' }]);
    await unary(inference, 'RepositoryModelUnload', { model_name: MODEL, parameters: { unload_dependents: { bool_param: false } } }, key);
    assert.deepEqual(app.serving.registry.names(), []);
    const after = await unary<IndexResponse>(inference, 'RepositoryIndex', {}, key);
    assert.deepEqual(after.models, [{ name: MODEL, version: '1', state: 'UNAVAILABLE', reason: 'unloaded' }]);

    const repo = join(repository, MODEL);
    const labels = (await readFile(join(RESNET20_DIR, 'labels.txt'), 'utf8')).split('\n').filter((l) => l.trim() !== '');
    await writeFile(join(repo, 'other-labels.txt'), labels.map((l) => `x-${l}`).join('\n'));
    const config = JSON.stringify({ ...RESNET20_CONFIG, labels: 'other-labels.txt' });
    await unary(inference, 'RepositoryModelLoad', { model_name: MODEL, parameters: { config: { string_param: config } } }, key);
    assert.deepEqual(app.serving.registry.get(MODEL).labels?.[3], 'x-cat');

    const bad = await expectStatus(
      unary(
        inference,
        'RepositoryModelLoad',
        { model_name: MODEL, parameters: { config: { string_param: JSON.stringify({ preprocess: { resize: 64, crop: 64 } }) } } },
        key,
      ),
      status.INVALID_ARGUMENT,
      'MODEL_LOAD_FAILED',
    );
    assert.match(bad.details, /failed to load/);
    assert.equal(app.serving.registry.get(MODEL).labels?.[3], 'x-cat', 'a failed reload leaves what served');
    await expectStatus(unary(inference, 'RepositoryModelLoad', { model_name: 'nope' }, key), status.NOT_FOUND, 'MODEL_NOT_FOUND');
    await expectStatus(
      unary(inference, 'RepositoryModelLoad', { model_name: MODEL, parameters: { config: { int64_param: 1 } } }, key),
      status.INVALID_ARGUMENT,
      'INVALID_REQUEST',
    );
  });
});
