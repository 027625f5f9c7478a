import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, ENV_VARS, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('has documented defaults and is frozen', () => {
    const c = loadConfig({}, { availableCpus: 3 });
    assert.equal(c.port, 8080);
    assert.equal(c.modelRepository, './models');
    assert.equal(c.batchMaxSize, undefined, 'left to the execution provider in use');
    assert.equal(c.batchMaxDelayMs, 0);
    assert.equal(c.inferenceWorkers, 1);
    assert.equal(c.intraOpThreads, 3, 'defaults to the CPUs this process may use');
    assert.equal(c.inferenceNice, 10);
    assert.equal(loadConfig({ INFERENCE_NICE: '0' }, { availableCpus: 3 }).inferenceNice, 0);
    assert.equal(c.uploadMaxBytes, 10 * 1024 * 1024);
    assert.equal(c.maxImagesPerRequest, 32);
    assert.equal(c.maxImagePixels, 40_000_000);
    assert.equal(c.executionProvider, 'cpu');
    assert.deepEqual(c.apiKeys, []);
    assert.ok(Object.isFrozen(c));
  });

  it('takes BATCH_MAX_SIZE when set', () => {
    assert.equal(loadConfig({ EXECUTION_PROVIDER: 'cuda', BATCH_MAX_SIZE: '4' }, { availableCpus: 2 }).batchMaxSize, 4);
  });

  it('fails with a message naming the variable and the value', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ PORT: 'eighty' }, /Expected `PORT` to be an integer from 0 to 65535, got `eighty`/],
      [{ BATCH_MAX_SIZE: '0' }, /Expected `BATCH_MAX_SIZE` to be an integer from 1 to 1024, got `0`/],
      [{ QUEUE_MAX_SIZE: '1.5' }, /`QUEUE_MAX_SIZE`/],
      [{ EXECUTION_PROVIDER: 'tpu' }, /Expected `EXECUTION_PROVIDER` to be one of `cpu`, `cuda`, `auto`, got `tpu`/],
      [{ BUILD_DEFAULT_MODEL: 'maybe' }, /`BUILD_DEFAULT_MODEL` to be true or false/],
      [{ METRICS_PORT: '8080' }, /`METRICS_PORT` to differ from `PORT`/],
      [{ MAX_IMAGES_PER_REQUEST: '200' }, /`MAX_IMAGES_PER_REQUEST` \(200\) to be at most `QUEUE_MAX_SIZE` \(128\)/],
      [{ HTTP_HEADERS_TIMEOUT_MS: '70000' }, /HTTP_HEADERS_TIMEOUT_MS/],
      [{ INFERENCE_NICE: '20' }, /Expected `INFERENCE_NICE` to be an integer from 0 to 19, got `20`/],
      [{ TRUST_PROXY: 'true' }, /`TRUST_PROXY` to be false or a comma-separated list .* \(trusting any peer would let a client/],
      [{ TRUST_PROXY: '1' }, /`TRUST_PROXY`.*\(trusting any peer/],
      [{ TRUST_PROXY: '10.0.0.1, 0.0.0.0/0' }, /`TRUST_PROXY`.*\(trusting any peer/],
      [{ TRUST_PROXY: '::/0' }, /`TRUST_PROXY`/],
      [{ TRUST_PROXY: '10.0.0.0/33' }, /`TRUST_PROXY`/],
      [{ TRUST_PROXY: 'ingress.local' }, /`TRUST_PROXY`/],
      [{ TRUST_PROXY: '10.0.0.1/8/2' }, /`TRUST_PROXY`/],
    ];
    for (const [env, message] of cases) {
      assert.throws(() => loadConfig(env, { availableCpus: 2 }), (err: Error) => err instanceof ConfigError && message.test(err.message), JSON.stringify(env));
    }
  });

  it('reads TRUST_PROXY as off or trusted addresses and ranges', () => {
    const read = (v: string | undefined) => loadConfig({ TRUST_PROXY: v }, { availableCpus: 2 }).trustProxy;
    assert.equal(read(undefined), false);
    assert.equal(read('false'), false);
    assert.deepEqual(read('10.0.0.0/8, 127.0.0.1,fd00::/8 ,::1'), ['10.0.0.0/8', '127.0.0.1', 'fd00::/8', '::1']);
  });

  it('reads API keys from API_KEYS and API_KEYS_FILE', () => {
    const c = loadConfig({ API_KEYS: 'a, b', API_KEYS_FILE: '/keys' }, { availableCpus: 2, readFile: () => 'c\n\nd\n' });
    assert.deepEqual(c.apiKeys, ['a', 'b', 'c', 'd']);
    assert.throws(
      () => loadConfig({ API_KEYS_FILE: '/missing' }, { availableCpus: 2, readFile: () => { throw new Error('ENOENT'); } }),
      /Could not read `API_KEYS_FILE` \(\/missing\): ENOENT/,
    );
  });

  it('lists every variable it reads in ENV_VARS', async () => {
    const { readFile } = await import('node:fs/promises');
    const { REPO_ROOT } = await import('../helpers.js');
    const source = await readFile(`${REPO_ROOT}/src/config.ts`, 'utf8');
    const read = new Set([...source.matchAll(/(?:env,\s*|env\.)'?([A-Z][A-Z0-9_]+)'?/g)].map((m) => m[1]!));
    for (const name of read) assert.ok((ENV_VARS as readonly string[]).includes(name), `${name} is read but not in ENV_VARS`);
    const readme = await readFile(`${REPO_ROOT}/README.md`, 'utf8');
    for (const name of ENV_VARS) assert.match(readme, new RegExp('\\| `' + name + '` \\|'), `${name} is missing from README's configuration table`);
  });
});
