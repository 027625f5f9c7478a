import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModelConfigError, parseModelConfigFile, resolveModelInput } from '../../../src/serving/model-config.js';

const files = { config: '/repo/m/config.json', model: '/repo/m/model.onnx' };
const input = (shape: Array<number | string>, type = 'float32') => [{ name: 'input', type, shape }];

describe('parseModelConfigFile', () => {
  it('accepts every documented field', () => {
    const config = parseModelConfigFile(
      {
        version: '2',
        labels: 'classes.txt',
        preprocess: { resize: 256, crop: 224, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], scale: 255, channels: 'BGR', layout: 'NHWC', decode: 'exact' },
        output: 'probabilities',
        trained: false,
        description: 'x',
        source: { url: 'https://example.org/m.onnx' },
      },
      files.config,
    );
    assert.equal(config.version, '2');
    assert.equal(config.preprocess?.channels, 'BGR');
    assert.equal(config.preprocess?.decode, 'exact');
    assert.equal(config.output, 'probabilities');
    assert.equal(config.trained, false);
  });

  it('names the file and the field at fault; a preprocessing field by the rule a preprocessor checks it by', () => {
    const cases: Array<[unknown, RegExp]> = [
      [[], /config\.json: must hold a JSON object/],
      [{ resise: 1 }, /config\.json: field `resise` is not a known field/],
      [{ preprocess: { crop: 0 } }, /field `preprocess\.crop` must be an integer from 1 to 8192, got 0/],
      [{ preprocess: { mean: [1, 2] } }, /field `preprocess\.mean` must be an array of 3 finite numbers, got \[1,2\]/],
      [{ preprocess: { std: [1, 0, 1] } }, /field `preprocess\.std` must be an array of 3 finite numbers above 0, got \[1,0,1\]/],
      [{ preprocess: { channels: 'RGBA' } }, /field `preprocess\.channels` must be "RGB" or "BGR", got "RGBA"/],
      [{ preprocess: { layout: 'CHW' } }, /field `preprocess\.layout` must be "NCHW" or "NHWC", got "CHW"/],
      [{ preprocess: { scale: -1 } }, /field `preprocess\.scale` must be a finite number above 0, got -1/],
      [{ preprocess: { decode: 'thumbnail' } }, /field `preprocess\.decode` must be "fast" or "exact", got "thumbnail"/],
      [{ preprocess: { size: 3 } }, /field `preprocess\.size` is not a known field/],
      [{ output: 'softmax' }, /field `output` must be one of "logits", "probabilities"/],
      [{ trained: 'no' }, /field `trained` must be true or false/],
      [{ version: 'a/b' }, /field `version` must be 1 to 64 letters/],
      [{ labels: 3 }, /field `labels` must be a file name/],
    ];
    for (const [raw, message] of cases) {
      assert.throws(
        () => parseModelConfigFile(raw, files.config),
        (err: Error) => err instanceof ModelConfigError && message.test(err.message),
        JSON.stringify(raw),
      );
    }
  });
});

describe('resolveModelInput', () => {
  it('defaults to torchvision ImageNet preprocessing for a dynamic 224 graph', () => {
    const r = resolveModelInput({}, input(['batch', 3, 224, 224]), files);
    assert.deepEqual(
      { ...r.preprocess },
      { resize: 256, crop: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], scale: 255, channels: 'RGB', layout: 'NCHW', decode: 'fast' },
    );
    assert.deepEqual(r.shape, [-1, 3, 224, 224]);
    assert.equal(r.fixedBatchSize, undefined);
    assert.equal(r.itemSize, 3 * 224 * 224);
  });

  it('derives crop = H and resize = round(H / 0.875) from a fixed graph size', () => {
    const r = resolveModelInput({}, input([1, 3, 32, 32]), files);
    assert.equal(r.preprocess.crop, 32);
    assert.equal(r.preprocess.resize, 37);
    assert.equal(r.fixedBatchSize, 1);
    assert.deepEqual(r.shape, [1, 3, 32, 32]);
  });

  it("keeps the shared ResNet-20's config", () => {
    const r = resolveModelInput({ preprocess: { resize: 32, crop: 32 } }, input(['batch', 3, 32, 32]), files);
    assert.equal(r.preprocess.resize, 32);
    assert.equal(r.preprocess.crop, 32);
  });

  it('keeps preprocess.decode, "fast" when the config leaves it out', () => {
    assert.equal(resolveModelInput({ preprocess: { decode: 'exact' } }, input(['N', 3, 224, 224]), files).preprocess.decode, 'exact');
    assert.equal(resolveModelInput({ preprocess: { crop: 224 } }, input(['N', 3, 224, 224]), files).preprocess.decode, 'fast');
  });

  it('reads NHWC graphs', () => {
    const r = resolveModelInput({ preprocess: { layout: 'NHWC' } }, input(['N', 224, 224, 3]), files);
    assert.deepEqual(r.shape, [-1, 224, 224, 3]);
  });

  it('uses the config sizes when the graph leaves H and W dynamic', () => {
    const r = resolveModelInput({ preprocess: { resize: 320, crop: 288 } }, input(['N', 3, 'H', 'W']), files);
    assert.equal(r.preprocess.crop, 288);
    assert.deepEqual(r.shape, [-1, 3, 288, 288]);
  });

  it('refuses what cannot be served, naming the file', () => {
    const cases: Array<[Parameters<typeof resolveModelInput>[0], ReturnType<typeof input>, RegExp]> = [
      [{}, [...input(['N', 3, 224, 224]), ...input(['N', 3, 224, 224])], /model\.onnx: must have exactly one graph input/],
      [{}, input(['N', 3, 224, 224], 'uint8'), /model\.onnx: input `input` must be float32, found uint8/],
      [{}, input(['N', 3, 224]), /must have rank 4/],
      [{}, input(['N', 1, 224, 224]), /config\.json: field `preprocess\.layout` is NCHW, but the graph input `input` has 1 channels/],
      [{}, input(['N', 3, 224, 192]), /only square inputs/],
      [{ preprocess: { crop: 256 } }, input(['N', 3, 224, 224]), /field `preprocess\.crop` is 256, but the graph input `input` is 224×224/],
      [{ preprocess: { resize: 200 } }, input(['N', 3, 224, 224]), /field `preprocess\.resize` is 200, smaller than the crop 224/],
    ];
    for (const [config, inputs, message] of cases) {
      assert.throws(
        () => resolveModelInput(config, inputs, files),
        (err: Error) => err instanceof ModelConfigError && message.test(err.message),
        message.source,
      );
    }
  });
});
