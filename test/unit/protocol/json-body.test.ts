import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { isServingError } from '../../../src/errors.js';
import {
  checkJsonLimits,
  createJsonBodyParser,
  DEFAULT_JSON_MAX_DEPTH,
  defaultJsonBodyLimits,
  parseJsonBody,
  type JsonBodyLimits,
} from '../../../src/protocol/json-body.js';
import { createRandom } from '../../../src/model-tools/prng.js';
import { nestedJsonBomb } from '../../../bench/lib/hostile-images.js';

const ROOMY: JsonBodyLimits = { maxDepth: 64, maxContainers: 100_000, maxKeys: 100_000 };

function limits(overrides: Partial<JsonBodyLimits>): JsonBodyLimits {
  return { ...ROOMY, ...overrides };
}

function parse(text: string, l: JsonBodyLimits = ROOMY): unknown {
  return parseJsonBody(Buffer.from(text), l);
}

/** The catalog error `run` throws, as `{ code, statusCode, message }`. */
function refusal(run: () => unknown): { code: string; statusCode: number; message: string } {
  try {
    run();
  } catch (err) {
    assert.ok(isServingError(err), `expected a ServingError, got ${String(err)}`);
    return { code: err.code, statusCode: err.statusCode, message: err.message };
  }
  assert.fail('expected a refusal');
}

/**
 * The same bytes at each alignment: the scan reads 4-byte words from the first aligned byte
 * on, so where the body starts in its ArrayBuffer changes which bytes share a word.
 */
function atEachOffset(text: string): Buffer[] {
  const bytes = Buffer.from(text);
  return [0, 1, 2, 3].map((offset) => {
    const backing = Buffer.alloc(offset + bytes.length + 3, 0x5b); // `[` around it: must not be read
    bytes.copy(backing, offset);
    return backing.subarray(offset, offset + bytes.length);
  });
}

const v1Body = {
  instances: [{ b64: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==' }, { image_bytes: { b64: 'AAAA' } }],
};
const v2Body = {
  id: 'req-1',
  parameters: { binary_data_output: false, priority: 1 },
  inputs: [
    {
      name: 'input',
      shape: [1, 3, 2, 2],
      datatype: 'FP32',
      parameters: {},
      data: [
        [
          [
            [0.5, -1e-7],
            [3.4e38, 0],
          ],
          [
            [1, 2],
            [3, 4],
          ],
          [
            [-0.25, 1.5e-45],
            [255, 127],
          ],
        ],
      ],
    },
    { name: 'image', shape: [2], datatype: 'BYTES', data: ['aGVsbG8=', 'd29ybGQ='] },
  ],
  outputs: [{ name: 'logits', parameters: { classification: 5 } }],
};

describe('parseJsonBody', () => {
  it('refuses the 16 MiB nested-array attack as INVALID_JSON at the depth limit', () => {
    const body = nestedJsonBomb(8 * 1024 * 1024 - 6);
    assert.equal(body.length, 16 * 1024 * 1024 - 1);
    const e = refusal(() => parseJsonBody(body, defaultJsonBodyLimits(16 * 1024 * 1024)));
    assert.deepEqual({ code: e.code, statusCode: e.statusCode }, { code: 'INVALID_JSON', statusCode: 400 });
    assert.match(e.message, new RegExp(`deeper than ${DEFAULT_JSON_MAX_DEPTH} levels`));
  });

  it('stops at the first violation: what follows it is not read', () => {
    // Too deep first, then too many containers, then not JSON at all: the depth answers.
    const body = '['.repeat(5) + '[],'.repeat(1000) + '}}}';
    assert.equal(refusal(() => parse(body, limits({ maxDepth: 4, maxContainers: 10 }))).code, 'INVALID_JSON');
    assert.match(refusal(() => parse(body, limits({ maxDepth: 4, maxContainers: 10 }))).message, /deeper than 4/);
    // Too many containers first, then too deep.
    const wide = '[' + '[],'.repeat(20) + '[[[[[[[[]]]]]]]]]';
    assert.equal(refusal(() => parse(wide, limits({ maxDepth: 4, maxContainers: 10 }))).code, 'PAYLOAD_TOO_LARGE');
  });

  it('accepts nesting exactly at maxDepth and refuses one level more, arrays and objects together', () => {
    const arrays = (n: number) => '['.repeat(n) + ']'.repeat(n);
    assert.deepEqual(parse(arrays(DEFAULT_JSON_MAX_DEPTH), defaultJsonBodyLimits(1024)), JSON.parse(arrays(DEFAULT_JSON_MAX_DEPTH)));
    assert.equal(refusal(() => parse(arrays(DEFAULT_JSON_MAX_DEPTH + 1), defaultJsonBodyLimits(1024))).code, 'INVALID_JSON');

    const mixed = (n: number) => '{"a":['.repeat(n) + ']}'.repeat(n); // depth 2n
    assert.deepEqual(parse(mixed(3), limits({ maxDepth: 6 })), JSON.parse(mixed(3)));
    assert.equal(refusal(() => parse(mixed(3), limits({ maxDepth: 5 }))).code, 'INVALID_JSON');
    assert.equal(refusal(() => parse('[{}]', limits({ maxDepth: 1 }))).code, 'INVALID_JSON');
    assert.deepEqual(parse('[1, 2]', limits({ maxDepth: 1 })), [1, 2]);
    assert.equal(parse('7', limits({ maxDepth: 1 })), 7);
  });

  it('refuses a close before its open, so closes cannot buy depth for what follows', () => {
    const e = refusal(() => checkJsonLimits(Buffer.from(']]' + '['.repeat(4)), limits({ maxDepth: 3 })));
    assert.deepEqual({ code: e.code, statusCode: e.statusCode }, { code: 'INVALID_JSON', statusCode: 400 });
  });

  it('does not count brackets, braces or colons inside strings', () => {
    const tight = limits({ maxDepth: 1, maxContainers: 1, maxKeys: 1 });
    assert.deepEqual(parse('{"k":"[[[{{{:::]]]}}}"}', tight), { k: '[[[{{{:::]]]}}}' });
    assert.deepEqual(parse('{"[{:":"x"}', tight), { '[{:': 'x' });
    // An escaped quote does not end the string; the brackets after it are still inside.
    assert.deepEqual(parse('["a\\"[[[[:{{"]', tight), ['a"[[[[:{{']);
    assert.deepEqual(parse(`["${'x'.repeat(40)}\\"[[[[${'y'.repeat(40)}"]`, tight), [`${'x'.repeat(40)}"[[[[${'y'.repeat(40)}`]);
  });

  it('ends a string at a quote after an escaped backslash, so what follows is counted', () => {
    // `"\\"` is one backslash: the quote after it closes the string and the arrays count.
    assert.deepEqual(parse('["\\\\",[[]]]', limits({ maxDepth: 3 })), ['\\', [[]]]);
    assert.equal(refusal(() => parse('["\\\\",[[]]]', limits({ maxDepth: 2 }))).code, 'INVALID_JSON');
    // Runs of 1 to 7 backslashes before a quote, short and long strings: odd escapes it.
    for (let run = 1; run <= 7; run++) {
      for (const pad of ['', 'p'.repeat(30)]) {
        const value = [`${pad}${'\\'.repeat(Math.floor(run / 2))}${run % 2 === 1 ? '"[[' : ''}`, [[]]];
        const text = JSON.stringify(value);
        assert.deepEqual(parse(text, limits({ maxDepth: 3 })), value, text);
        assert.equal(refusal(() => parse(text, limits({ maxDepth: 2 }))).code, 'INVALID_JSON', text);
      }
    }
  });

  it('refuses more arrays and objects than maxContainers as PAYLOAD_TOO_LARGE', () => {
    const body = (n: number) =>
      `[${Array(n - 1)
        .fill('{}')
        .join(',')}]`; // n containers
    assert.equal((parse(body(10), limits({ maxContainers: 10 })) as unknown[]).length, 9);
    const e = refusal(() => parse(body(11), limits({ maxContainers: 10 })));
    assert.deepEqual({ code: e.code, statusCode: e.statusCode }, { code: 'PAYLOAD_TOO_LARGE', statusCode: 413 });
    assert.match(e.message, /more than 10 arrays and objects/);
    // Empty arrays count: they cost JSON.parse as much as full ones.
    assert.equal(refusal(() => parse('[[],[],[]]', limits({ maxContainers: 3 }))).code, 'PAYLOAD_TOO_LARGE');
  });

  it('refuses more object keys than maxKeys as PAYLOAD_TOO_LARGE, across all objects', () => {
    const keys = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`;
    assert.equal(Object.keys(parse(keys(5), limits({ maxKeys: 5 })) as object).length, 5);
    const e = refusal(() => parse(keys(6), limits({ maxKeys: 5 })));
    assert.deepEqual({ code: e.code, statusCode: e.statusCode }, { code: 'PAYLOAD_TOO_LARGE', statusCode: 413 });
    assert.match(e.message, /more than 5 object keys/);
    assert.equal(refusal(() => parse('[{"a":1},{"b":2},{"c":{"d":3}}]', limits({ maxKeys: 3 }))).code, 'PAYLOAD_TOO_LARGE');
  });

  it('answers INVALID_JSON for bodies that are not JSON', () => {
    for (const text of [
      '{"instances": [{"b64": ',
      "{'a':1}",
      '[1,]',
      '{"a" 1}',
      ']',
      '}{',
      '"unterminated',
      '[1]]',
      ' ',
      '\r\n\t',
      'nul',
      '{"a":1}x',
      '\ufeff',
    ]) {
      const e = refusal(() => parse(text));
      assert.deepEqual({ code: e.code, statusCode: e.statusCode }, { code: 'INVALID_JSON', statusCode: 400 }, JSON.stringify(text));
    }
    // Bytes that are not UTF-8 decode to U+FFFD, as Fastify decodes them: a string holding it is valid.
    assert.deepEqual(parseJsonBody(Buffer.from([0x5b, 0x22, 0xff, 0x22, 0x5d]), ROOMY), ['\ufffd']);
  });

  it('answers an empty body as Fastify did (FST_ERR_CTP_EMPTY_JSON_BODY → INVALID_JSON)', () => {
    const e = refusal(() => parseJsonBody(Buffer.alloc(0), ROOMY));
    assert.deepEqual(e, { code: 'INVALID_JSON', statusCode: 400, message: 'The JSON body is empty' });
  });

  it('parses v1 and v2 bodies, whitespace, escapes and UTF-8 to what JSON.parse gives', () => {
    const texts = [
      JSON.stringify(v1Body),
      JSON.stringify(v2Body),
      JSON.stringify(v2Body, null, 2).replace(/\n/g, '\r\n'),
      JSON.stringify(v2Body, null, '\t'),
      ' \t\r\n{ "inputs" : [ ] , "id" : "x" } \n',
      '{"name":"\\u00e9\\ud83d\\ude00\\u005b\\u007b\\u003a","raw":"é😀[{:","ctl":"\\n\\t\\/\\b\\f\\r\\\\"}',
      '[-0, 1e308, -1.5E-10, 0.1, 12345678901234567890, true, false, null, ""]',
      '"a string"',
      '42',
      'null',
    ];
    for (const text of texts) {
      for (const body of atEachOffset(text)) assert.deepEqual(parseJsonBody(body, defaultJsonBodyLimits(1024 * 1024)), JSON.parse(text), text);
    }
  });

  it('ignores a leading byte-order mark, as Fastify did', () => {
    assert.deepEqual(parse('\ufeff{"a":[1]}'), { a: [1] });
  });

  describe('prototype poisoning, as Fastify refuses it by default', () => {
    const refused = [
      '{"__proto__":{"isAdmin":true}}',
      '{"a":1,"__proto__":1}',
      '{"\\u005f_proto__":{}}',
      '{"\\u005F\\u005Fproto\\u005f\\u005f":{}}',
      '[{"a":{"b":[{"__proto__":null}]}}]',
      '{"constructor":{"prototype":{"isAdmin":true}}}',
      '{"inputs":[{"parameters":{"constructor":{"prototype":1}}}]}',
      '{"\\u0063onstructor":{"prototype":{}}}',
    ];
    const accepted = [
      '{"constructor":1}',
      '{"constructor":{"name":"x"}}',
      '{"constructor":null}',
      '{"a":"__proto__","b":"\\"__proto__\\":"}',
      '{"proto":1,"_proto_":2,"prototype":{}}',
      '[0,0,0,{"constructor":{"x":[0,0]}}]',
    ];

    it('refuses `__proto__` and `constructor.prototype` keys with INVALID_JSON', () => {
      for (const text of refused) {
        const e = refusal(() => parse(text));
        assert.deepEqual({ code: e.code, statusCode: e.statusCode }, { code: 'INVALID_JSON', statusCode: 400 }, text);
      }
      const clean = parse('{"a":{"b":1}}') as object;
      assert.equal(Object.getPrototypeOf(clean), Object.prototype);
    });

    it('accepts the bodies Fastify accepts, with the same values', () => {
      for (const text of accepted) assert.deepEqual(parse(text), JSON.parse(text), text);
    });

    it('agrees with Fastify 5’s default JSON parser on every body here', async (t) => {
      const app = Fastify();
      t.after(() => app.close());
      const fastifyParser = app.getDefaultJsonParser('error', 'error');
      const fastifyParse = (text: string) =>
        new Promise<{ ok: true; value: unknown } | { ok: false }>((resolve) => {
          void fastifyParser({} as never, text, (err, value) => resolve(err ? { ok: false } : { ok: true, value }));
        });
      for (const text of [...refused, ...accepted, JSON.stringify(v1Body), JSON.stringify(v2Body), '', ' ', '[1,]', '\ufeff[1]']) {
        const theirs = await fastifyParse(text);
        let ours: { ok: true; value: unknown } | { ok: false };
        try {
          ours = { ok: true, value: parse(text) };
        } catch (err) {
          assert.ok(isServingError(err) && err.code === 'INVALID_JSON', String(err));
          ours = { ok: false };
        }
        assert.deepEqual(ours, theirs, text);
      }
    });
  });

  it('counts exactly what JSON.parse builds, at every alignment (seeded fuzz)', () => {
    const random = createRandom(20261130);
    const int = (n: number) => Math.floor(random.uniform() * n);
    const pieces = ['a', 'Z', '0', ' ', '"', '\\', '[', ']', '{', '}', ':', ',', 'é', '😀', '\n', '\u2028', '\\"', '\\\\'];
    const text = () => Array.from({ length: int(24) }, () => pieces[int(pieces.length)]).join('');
    const scalar = () => [() => int(1000), () => (random.uniform() - 0.5) * 10 ** (int(40) - 20), () => text(), () => true, () => null][int(5)]!();
    type Stats = { depth: number; containers: number; keys: number };
    function value(level: number, stats: Stats): unknown {
      if (level >= 7 || random.uniform() < 0.3) return scalar();
      stats.containers++;
      stats.depth = Math.max(stats.depth, level + 1);
      const n = int(5);
      if (random.uniform() < 0.5) return Array.from({ length: n }, () => value(level + 1, stats));
      const o: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) o[`${text()}#${i}`] = value(level + 1, stats);
      stats.keys += n;
      return o;
    }
    for (let round = 0; round < 300; round++) {
      const stats: Stats = { depth: 0, containers: 0, keys: 0 };
      const v = value(0, stats);
      const json = JSON.stringify(v, null, ['', ' ', '\t', '\r\n'][int(4)]);
      const exact = { maxDepth: Math.max(1, stats.depth), maxContainers: Math.max(1, stats.containers), maxKeys: Math.max(1, stats.keys) };
      for (const body of atEachOffset(json)) {
        assert.deepEqual(parseJsonBody(body, exact), JSON.parse(json), json);
        if (stats.depth > 1) assert.equal(refusal(() => checkJsonLimits(body, { ...exact, maxDepth: stats.depth - 1 })).code, 'INVALID_JSON', json);
        if (stats.containers > 1)
          assert.equal(refusal(() => checkJsonLimits(body, { ...exact, maxContainers: stats.containers - 1 })).code, 'PAYLOAD_TOO_LARGE', json);
        if (stats.keys > 1) assert.equal(refusal(() => checkJsonLimits(body, { ...exact, maxKeys: stats.keys - 1 })).code, 'PAYLOAD_TOO_LARGE', json);
      }
    }
  });
});

describe('defaultJsonBodyLimits', () => {
  it('scales the counts with the body limit, with floors for small limits', () => {
    assert.deepEqual(defaultJsonBodyLimits(16 * 1024 * 1024), { maxDepth: 32, maxContainers: 262_144, maxKeys: 65_536 });
    assert.deepEqual(defaultJsonBodyLimits(1024), { maxDepth: 32, maxContainers: 65_536, maxKeys: 65_536 });
    assert.ok(Object.isFrozen(defaultJsonBodyLimits(1024)));
  });

  it('accepts a nested [32,3,224,224] tensor in a 16 MiB body', () => {
    const row = `[${Array.from({ length: 224 }, (_, i) => i % 10).join(',')}]`;
    const plane = `[${Array(224).fill(row).join(',')}]`;
    const image = `[${Array(3).fill(plane).join(',')}]`;
    const text = `{"inputs":[{"name":"input","shape":[32,3,224,224],"datatype":"FP32","data":[${Array(32).fill(image).join(',')}]}]}`;
    assert.ok(text.length < 16 * 1024 * 1024);
    const body = parseJsonBody(Buffer.from(text), defaultJsonBodyLimits(16 * 1024 * 1024)) as { inputs: Array<{ data: number[][][][] }> };
    assert.equal(body.inputs[0]!.data[31]![2]![223]![223], 223 % 10);
  });

  it('rejects a body limit that is not a positive integer, precisely', () => {
    assert.throws(() => defaultJsonBodyLimits(0), /Expected `bodyLimitBytes` to be an integer from 1 and up, got `0`/);
    assert.throws(() => defaultJsonBodyLimits(1.5), /got `1.5`/);
  });
});

describe('createJsonBodyParser', () => {
  it('rejects invalid limits at once, precisely', () => {
    assert.throws(() => createJsonBodyParser(limits({ maxDepth: 0 })), /Expected `maxDepth` to be an integer from 1 and up, got `0`/);
    assert.throws(() => createJsonBodyParser(limits({ maxContainers: Number.NaN })), /Expected `maxContainers` to be an integer from 1 and up, got `NaN`/);
    assert.throws(() => parseJsonBody(Buffer.from('[]'), limits({ maxKeys: -1 })), /Expected `maxKeys`/);
  });

  it('hands the value or the catalog error to done', () => {
    const parser = createJsonBodyParser(limits({ maxDepth: 2 }));
    const calls: Array<[Error | null, unknown]> = [];
    parser({} as never, Buffer.from('{"a":[1]}'), (err, value) => calls.push([err, value]));
    parser({} as never, Buffer.from('[[[]]]'), (err, value) => calls.push([err, value]));
    assert.deepEqual(calls[0], [null, { a: [1] }]);
    assert.equal(calls[1]![1], undefined);
    assert.ok(isServingError(calls[1]![0]) && calls[1]![0].code === 'INVALID_JSON');
  });

  it('replaces Fastify’s JSON parser with parseAs buffer (the wiring app.ts uses)', async (t) => {
    const app = Fastify();
    t.after(() => app.close());
    const bodyLimit = 4096;
    app.addContentTypeParser(
      'application/json',
      { parseAs: 'buffer', bodyLimit },
      createJsonBodyParser({ ...defaultJsonBodyLimits(bodyLimit), maxContainers: 100 }),
    );
    app.post('/echo', async (request) => ({ body: request.body }));
    const post = (payload: string, type = 'application/json') => app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': type }, payload });

    const ok = await post(JSON.stringify(v2Body), 'application/json; charset=utf-8');
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { body: v2Body });
    const deep = await post('['.repeat(40) + ']'.repeat(40));
    assert.deepEqual([deep.statusCode, deep.json().code], [400, 'INVALID_JSON']);
    const wide = await post(`[${Array(200).fill('[]').join(',')}]`);
    assert.deepEqual([wide.statusCode, wide.json().code], [413, 'PAYLOAD_TOO_LARGE']);
    const empty = await post('');
    assert.deepEqual([empty.statusCode, empty.json().code], [400, 'INVALID_JSON']);
  });
});
