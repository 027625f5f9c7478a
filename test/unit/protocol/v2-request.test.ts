/**
 * Decoding v2 inference requests, JSON and binary (Triton's binary tensor extension): every
 * framing fault is a 4xx from the catalog, never a 5xx, and nothing is allocated from a size
 * the client claims before the bytes are there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isServingError } from '../../../src/errors.js';
import { defaultJsonBodyLimits } from '../../../src/protocol/json-body.js';
import { decodeInferRequest, parseHeaderLength, splitBytesElements, type DecodeLimits } from '../../../src/protocol/v2-request.js';

const LIMITS: DecodeLimits = { maxElements: 1_000_000, maxImages: 4, maxImageBytes: 1_000, json: defaultJsonBodyLimits(1 << 20) };

/** A binary-form body: the JSON header, then the tail. */
function binaryBody(header: unknown, ...tail: Uint8Array[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...tail]), headerLength: json.length };
}

function fp32(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

function bytesTensor(...elements: Uint8Array[]): Buffer {
  return Buffer.concat(
    elements.flatMap((e) => {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(e.length);
      return [length, Buffer.from(e)];
    }),
  );
}

function refusal(fn: () => unknown): { code: string; status: number; message: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(isServingError(err), `not a catalog error: ${String(err)}`);
    return { code: err.code, status: err.statusCode, message: err.message };
  }
  assert.fail('expected a refusal');
}

describe('decodeInferRequest', () => {
  it('reads FP32 and BYTES inputs in binary form, in input order, and the output requests', () => {
    const image = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    const { body, headerLength } = binaryBody(
      {
        id: 'r1',
        inputs: [
          { name: 'input', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
          { name: 'image', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: 4 + 7 + 4 + 0 } },
        ],
        outputs: [{ name: 'logits', parameters: { binary_data: false, classification: 3 } }],
        parameters: { binary_data_output: true },
      },
      fp32([1.5, -2]),
      bytesTensor(image, new Uint8Array(0)),
    );
    const r = decodeInferRequest(body, headerLength, LIMITS);
    assert.equal(r.id, 'r1');
    assert.equal(r.binaryOutput, true);
    assert.deepEqual(r.outputs, [{ name: 'logits', binary: false, classification: 3 }]);
    const [a, b] = r.inputs;
    assert.ok(a?.datatype === 'FP32' && b?.datatype === 'BYTES');
    assert.deepEqual(Array.from(a.data), [1.5, -2]);
    assert.deepEqual(
      b.elements.map((e) => Array.from(e)),
      [Array.from(image), []],
    );
  });

  it('reads JSON data, flat or nested, and base64 BYTES, the same as their binary forms', () => {
    const nested = decodeInferRequest(
      Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [[1.5, -2]] }] })),
      undefined,
      LIMITS,
    );
    const { body, headerLength } = binaryBody(
      { inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } }] },
      fp32([1.5, -2]),
    );
    assert.deepEqual(nested.inputs, decodeInferRequest(body, headerLength, LIMITS).inputs);
    const b64 = decodeInferRequest(
      Buffer.from(JSON.stringify({ inputs: [{ name: 'image', shape: [1], datatype: 'BYTES', data: [Buffer.from('abc').toString('base64')] }] })),
      undefined,
      LIMITS,
    );
    assert.ok(b64.inputs[0]?.datatype === 'BYTES');
    assert.equal(Buffer.from(b64.inputs[0].elements[0]!).toString(), 'abc');
  });

  it('refuses every framing fault with 400 INVALID_TENSOR (or the limit that names it), never a 5xx', () => {
    const header = (size: unknown, shape = [1, 2], datatype = 'FP32') => ({
      inputs: [{ name: 'input', shape, datatype, parameters: { binary_data_size: size } }],
    });
    const cases: Array<[string, () => unknown, string]> = [
      ['header length beyond the body', () => decodeInferRequest(Buffer.from('{"inputs":[]}'), 1000, LIMITS), 'INVALID_TENSOR'],
      ['negative header length', () => decodeInferRequest(Buffer.from('{}'), -1, LIMITS), 'INVALID_TENSOR'],
      [
        'size beyond what follows',
        () => {
          const b = binaryBody(header(8), fp32([1]));
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'size that disagrees with shape × datatype',
        () => {
          const b = binaryBody(header(4), fp32([1]));
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'negative size',
        () => {
          const b = binaryBody(header(-4), fp32([1]));
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'absurd size',
        () => {
          const b = binaryBody(header(2 ** 60), fp32([1]));
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'size as a string',
        () => {
          const b = binaryBody(header('8'), fp32([1, 2]));
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'leftover bytes',
        () => {
          const b = binaryBody(header(8), fp32([1, 2, 3]));
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      ['binary size without a header length', () => decodeInferRequest(Buffer.from(JSON.stringify(header(8))), undefined, LIMITS), 'INVALID_TENSOR'],
      [
        'both data and binary size',
        () => {
          const b = binaryBody(
            { inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [1, 2], parameters: { binary_data_size: 8 } }] },
            fp32([1, 2]),
          );
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'a BYTES length running past its tensor',
        () => {
          const t = bytesTensor(Uint8Array.of(1, 2, 3));
          t.writeUInt32LE(99, 0);
          const b = binaryBody(header(t.length, [1], 'BYTES'), t);
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'a BYTES length cut off',
        () => {
          const b = binaryBody(header(2, [1], 'BYTES'), Uint8Array.of(1, 0));
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'more BYTES elements than the shape',
        () => {
          const t = bytesTensor(Uint8Array.of(1), Uint8Array.of(2));
          const b = binaryBody(header(t.length, [1], 'BYTES'), t);
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'a shape claiming a billion values with one',
        () =>
          decodeInferRequest(
            Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, 1_000_000_000], datatype: 'FP32', data: [0] }] })),
            undefined,
            LIMITS,
          ),
        'INVALID_TENSOR',
      ],
      [
        'non-finite FP32 in binary',
        () => {
          const b = binaryBody(header(8), fp32([Number.NaN, 1]));
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'INVALID_TENSOR',
      ],
      [
        'an unknown datatype',
        () => decodeInferRequest(Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1], datatype: 'FP64', data: [0] }] })), undefined, LIMITS),
        'INVALID_TENSOR',
      ],
      [
        'a name that is an object',
        () =>
          decodeInferRequest(Buffer.from(JSON.stringify({ inputs: [{ name: { toString: 1 }, shape: [1], datatype: 'FP32', data: [0] }] })), undefined, LIMITS),
        'INVALID_TENSOR',
      ],
      [
        'a classification of zero',
        () =>
          decodeInferRequest(
            Buffer.from(
              JSON.stringify({
                inputs: [{ name: 'input', shape: [1, 1], datatype: 'FP32', data: [0] }],
                outputs: [{ name: 'logits', parameters: { classification: 0 } }],
              }),
            ),
            undefined,
            LIMITS,
          ),
        'INVALID_REQUEST',
      ],
      [
        'more images than allowed',
        () =>
          decodeInferRequest(
            Buffer.from(JSON.stringify({ inputs: [{ name: 'image', shape: [5], datatype: 'BYTES', data: ['AA==', 'AA==', 'AA==', 'AA==', 'AA=='] }] })),
            undefined,
            LIMITS,
          ),
        'TOO_MANY_IMAGES',
      ],
      [
        'images over the byte limit together',
        () => {
          const t = bytesTensor(new Uint8Array(600), new Uint8Array(600));
          const b = binaryBody(header(t.length, [2], 'BYTES'), t);
          return decodeInferRequest(b.body, b.headerLength, LIMITS);
        },
        'PAYLOAD_TOO_LARGE',
      ],
      ['a header that is not JSON', () => decodeInferRequest(Buffer.from('not json{'), undefined, LIMITS), 'INVALID_JSON'],
    ];
    for (const [what, fn, code] of cases) {
      const r = refusal(fn);
      assert.equal(r.code, code, `${what}: ${r.code} ${r.message}`);
      assert.ok(r.status >= 400 && r.status < 500, what);
    }
  });

  it('parses Inference-Header-Content-Length strictly', () => {
    assert.equal(parseHeaderLength(undefined), undefined);
    assert.equal(parseHeaderLength(' 148 '), 148);
    for (const bad of ['-1', '1e3', 'abc', '', '9'.repeat(20)]) assert.equal(refusal(() => parseHeaderLength(bad)).code, 'INVALID_TENSOR', bad);
  });

  it('splits BYTES elements without copying them', () => {
    const t = bytesTensor(Uint8Array.of(7, 8), Uint8Array.of(9));
    const [a, b] = splitBytesElements(t, 2, 'x');
    assert.deepEqual([Array.from(a!), Array.from(b!)], [[7, 8], [9]]);
    assert.equal(a!.buffer, t.buffer);
  });
});
