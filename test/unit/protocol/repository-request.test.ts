import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONFIG_OVERRIDE_SOURCE, parseIndexRequest, parseLoadRequest, parseUnloadRequest } from '../../../src/protocol/repository-request.js';

const refused = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (err: { code?: string; message: string }) => err.code === 'INVALID_REQUEST' && message.test(err.message));

describe('repository extension requests', () => {
  it('reads the index filter, with or without a body', () => {
    assert.deepEqual(parseIndexRequest(undefined), { ready: false });
    assert.deepEqual(parseIndexRequest({}), { ready: false });
    assert.deepEqual(parseIndexRequest({ ready: true }), { ready: true });
    refused(() => parseIndexRequest({ ready: 'yes' }), /`ready` to be true or false/);
    refused(() => parseIndexRequest({ readyy: true }), /Unknown field `readyy`/);
    refused(() => parseIndexRequest([]), /JSON object/);
  });

  it('takes a config override as config.json is taken, naming the request in messages', () => {
    assert.deepEqual(parseLoadRequest(undefined), { override: undefined });
    assert.deepEqual(parseLoadRequest({ parameters: {} }), { override: undefined });
    const { override } = parseLoadRequest({ parameters: { config: JSON.stringify({ labels: 'other.txt', preprocess: { resize: 32, crop: 32 } }) } });
    assert.equal(override?.source, CONFIG_OVERRIDE_SOURCE);
    assert.equal(override?.config.labels, 'other.txt');
    refused(() => parseLoadRequest({ parameters: { config: '{' } }), /parameters\.config: is not valid JSON/);
    refused(() => parseLoadRequest({ parameters: { config: { labels: 'x' } } }), /a string holding a JSON object/);
    refused(() => parseLoadRequest({ parameters: { config: JSON.stringify({ lables: 'x' }) } }), /parameters\.config: field `lables` is not a known field/);
    refused(() => parseLoadRequest({ parameters: { file: 'x' } }), /Unknown parameter `file`/);
  });

  it("accepts Triton's unload_dependents and refuses other parameters", () => {
    assert.doesNotThrow(() => parseUnloadRequest({ parameters: { unload_dependents: true } }));
    refused(() => parseUnloadRequest({ parameters: { force: true } }), /Unknown parameter `force`/);
  });
});
