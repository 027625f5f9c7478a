/**
 * JSON request bodies, parsed within limits. JSON.parse is fast per byte but not per value. On
 * 16 MiB bodies (Node 20.20, one parse in a fresh process), `{"inputs":` + 8M `[` + 8M `]` took
 * 2.8–3.9 s and 820–880 MB more peak RSS; 5.6M `{}` 1.6 s and 570 MB; one object of 1.4M keys
 * 1.1–1.6 s and 360 MB; while the largest legitimate bodies, 4.8M numbers flat or nested as
 * [32,3,224,224], took 85–130 ms and 75–125 MB. The byte limit cannot tell them apart.
 *
 * So one linear pass over the raw bytes first counts what makes JSON.parse slow (nesting,
 * arrays and objects, object keys) and refuses the body at the first count past its limit,
 * having read only the bytes before it (the attack above: 0.2 ms); only then is the body
 * decoded and parsed. The pass keeps three counters and no stack, whatever the body.
 *
 * Prototype poisoning is refused as Fastify's default parser refuses it (`onProtoPoisoning` and
 * `onConstructorPoisoning` both `'error'`, which app.ts does not change): a `__proto__` key, or
 * a `constructor` key whose value has a `prototype` key, makes the body INVALID_JSON.
 */
import { errors } from '../errors.js';

export interface JsonBodyLimits {
  /**
   * Deepest nesting of arrays and objects together; a top-level `{}` is depth 1. The deepest
   * legitimate body is a v2 request with nested tensor data: request object, `inputs` array,
   * input object, then one array per dimension, 11 for rank 8.
   * @default 32
   */
  readonly maxDepth: number;
  /**
   * Arrays and objects in the whole body. Nested tensor data has one array per row: a nested
   * [1024,3,32,32] request of integers 0–255 is 102,403 arrays in 11.4 MB, one per 112 bytes.
   * @default bodyLimitBytes / 64, at least 65,536
   */
  readonly maxContainers: number;
  /**
   * Object keys in the whole body. A v2 request has tens; a v1 request one or two per image
   * (`{"b64"}` or `{"image_bytes": {"b64"}}`). The floors of 65,536 keep both counts far above
   * any request a small body limit lets through, so such a request meets the limit that names
   * its real fault (TOO_MANY_IMAGES, say) rather than this one; JSON.parse builds 65,536 of
   * either in a few ms.
   * @default bodyLimitBytes / 1024, at least 65,536
   */
  readonly maxKeys: number;
}

/** @see JsonBodyLimits.maxKeys */
const JSON_COUNT_FLOOR = 65_536;

/** @see JsonBodyLimits.maxDepth */
export const DEFAULT_JSON_MAX_DEPTH = 32;

/**
 * The limits for bodies of at most `bodyLimitBytes`. The counts scale with the body limit, since
 * legitimate bodies need more arrays as they grow. At 16 MiB they allow 262,144 arrays and
 * objects and 65,536 keys (the floor): JSON.parse built 262,143 `{}` in 9 ms warm (27 ms cold,
 * +30 MB RSS) and one object of 65,536 keys in 12–21 ms, against 1.6 s for 5.6M `{}` and 1.2 s
 * for 1.4M keys.
 * No count is kept of numbers and strings: they cost JSON.parse about what their bytes do (8.4M
 * zeros, the most 16 MiB holds, 140–200 ms and +210 MB; 4.8M legitimate numbers 110–130 ms and
 * +125 MB), so the body limit bounds them.
 */
export function defaultJsonBodyLimits(bodyLimitBytes: number): JsonBodyLimits {
  if (!Number.isInteger(bodyLimitBytes) || bodyLimitBytes < 1) {
    throw new TypeError(`Expected \`bodyLimitBytes\` to be an integer from 1 and up, got \`${bodyLimitBytes}\``);
  }
  return Object.freeze({
    maxDepth: DEFAULT_JSON_MAX_DEPTH,
    maxContainers: Math.max(JSON_COUNT_FLOOR, Math.floor(bodyLimitBytes / 64)),
    maxKeys: Math.max(JSON_COUNT_FLOOR, Math.floor(bodyLimitBytes / 1024)),
  });
}

function checkLimits(limits: JsonBodyLimits): void {
  for (const name of ['maxDepth', 'maxContainers', 'maxKeys'] as const) {
    const value = limits[name];
    if (!Number.isInteger(value) || value < 1) throw new TypeError(`Expected \`${name}\` to be an integer from 1 and up, got \`${value}\``);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** What a byte outside a string does to the counts; the structural characters are all ASCII. */
const enum Kind {
  Other = 0,
  Quote,
  Open,
  Close,
  Colon,
}

/** One lookup per byte that the word test below lets through. */
const KIND = new Uint8Array(256);
KIND[QUOTE] = Kind.Quote;
KIND[0x5b] = KIND[0x7b] = Kind.Open; // [ {
KIND[0x5d] = KIND[0x7d] = Kind.Close; // ] }
KIND[0x3a] = Kind.Colon;

/**
 * The first word, from `w` on, that may hold a structural byte. Tensor data is digits, commas,
 * dots, signs and whitespace, all below `:` (0x3a) and none a `"`, so a word of four such bytes
 * is skipped with a few integer operations; any other byte (`e`, the letters of true, false and
 * null, UTF-8) only sends its word to the byte loop. Scanning 16 MiB of numbers took 17–21 ms
 * byte by byte and 3–5 ms by words (Node 20, warm), against 60–200 ms for JSON.parse.
 */
function skipPlainWords(words: Int32Array, w: number): number {
  for (; w < words.length; w++) {
    const x = words[w]!;
    // Bit 7 of a byte is set for a byte above 0x39: (b & 0x7f) + 0x46 reaches 0x80 for b ≥ 0x3a
    // and never carries into the next byte; a byte ≥ 0x80 has it already.
    const high = (((x & 0x7f7f7f7f) + 0x46464646) | x) & 0x80808080;
    // A `"` is a zero byte after the xor, which the classic has-a-zero-byte test finds.
    const q = x ^ 0x22222222;
    const quote = (q - 0x01010101) & ~q & 0x80808080;
    if ((high | quote) !== 0) return w;
  }
  return w;
}

/**
 * Index of the quote that closes the string whose content starts at `from`, or `body.length`
 * if it never closes (JSON.parse then refuses the body). A quote is escaped when an odd run of
 * backslashes precedes it; each run precedes one quote, so every byte is looked at once, and
 * `indexOf` skips the rest at native speed (a v1 body is mostly one base64 string).
 */
function endOfString(body: Buffer, from: number): number {
  // Keys and short strings end within a few bytes: looking at them costs less than a call to
  // indexOf (3.4M two-letter strings scanned in 40 ms with a call each, 18 ms so).
  for (let i = from, stop = Math.min(body.length, from + 16); i < stop; i++) {
    const c = body[i];
    if (c === QUOTE) return i;
    if (c === BACKSLASH) break;
  }
  for (let start = from; ;) {
    const quote = body.indexOf(QUOTE, start);
    if (quote < 0) return body.length;
    let before = quote - 1;
    while (before >= from && body[before] === BACKSLASH) before--;
    if ((quote - before) % 2 === 1) return quote;
    start = quote + 1;
  }
}

/**
 * Refuses `body` at the first place it nests deeper, or holds more arrays and objects or more
 * keys, than `limits` allow. Outside strings, every `[` and `{` opens a container and every `:`
 * follows a key, so for valid JSON the counts are exact; for invalid JSON they may be off, and
 * JSON.parse refuses it anyway. Structural characters are ASCII and UTF-8 never uses ASCII
 * bytes inside a multi-byte character, so the raw bytes are scanned without decoding them.
 *
 * Depth is a syntax limit (RFC 8259 §9 lets a parser set one): no request of this API nests
 * that deep, at any size, so INVALID_JSON (400). The counts grow with the request, like its
 * bytes, and a smaller request (fewer images, flat tensor data) gets through: PAYLOAD_TOO_LARGE
 * (413).
 */
export function checkJsonLimits(body: Buffer, limits: JsonBodyLimits): void {
  const { maxDepth, maxContainers, maxKeys } = limits;
  // body[first] is the first byte on a 4-byte boundary, where the aligned words start.
  const first = (4 - (body.byteOffset & 3)) & 3;
  const wordCount = Math.max(0, (body.length - first) >> 2);
  const words = wordCount === 0 ? new Int32Array(0) : new Int32Array(body.buffer, body.byteOffset + first, wordCount);
  let depth = 0;
  let containers = 0;
  let keys = 0;
  for (let i = 0; i < body.length; i++) {
    if (i >= first && ((i - first) & 3) === 0) {
      i = first + 4 * skipPlainWords(words, (i - first) >> 2);
      if (i >= body.length) break;
    }
    const kind = KIND[body[i]!];
    if (kind === Kind.Other) continue;
    if (kind === Kind.Quote) {
      i = endOfString(body, i + 1);
    } else if (kind === Kind.Open) {
      if (++depth > maxDepth) throw errors.INVALID_JSON(`The JSON body nests arrays and objects deeper than ${maxDepth} levels`);
      if (++containers > maxContainers)
        throw errors.PAYLOAD_TOO_LARGE(`The JSON body holds more than ${maxContainers} arrays and objects; send fewer items, or tensor data flat`);
    } else if (kind === Kind.Close) {
      if (--depth < 0) throw errors.INVALID_JSON();
    } else if (++keys > maxKeys) {
      throw errors.PAYLOAD_TOO_LARGE(`The JSON body holds more than ${maxKeys} object keys`);
    }
  }
}

/**
 * Keys that may name `__proto__` or `constructor`, escapes included: secure-json-parse's own
 * test, which keeps the walk below off nearly every body.
 */
const SUSPECT_PROTO =
  /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"\s*:/;
const SUSPECT_CONSTRUCTOR =
  /"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"\s*:/;

const FORBIDDEN_KEY = 'The JSON body holds a `__proto__` key or a `constructor` with a `prototype`';

/**
 * Refuses what secure-json-parse refuses with `protoAction` and `constructorAction` `'error'`,
 * without recursion. secure-json-parse walks arrays with `for...in`, which took 1.1 s on a body
 * of 8.4M zeros holding one `"constructor":` key; indexing takes milliseconds.
 */
function refusePrototypeKeys(root: object): void {
  const pending: object[] = [root];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const value: unknown = node[i];
        if (value !== null && typeof value === 'object') pending.push(value);
      }
      continue;
    }
    const record = node as Record<string, unknown>;
    if (Object.hasOwn(record, '__proto__')) throw errors.INVALID_JSON(FORBIDDEN_KEY);
    const ctor = record.constructor;
    if (Object.hasOwn(record, 'constructor') && ctor !== null && typeof ctor === 'object' && Object.hasOwn(ctor, 'prototype')) {
      throw errors.INVALID_JSON(FORBIDDEN_KEY);
    }
    for (const key in record) {
      const value = record[key];
      if (value !== null && typeof value === 'object') pending.push(value);
    }
  }
}

/**
 * Parses a JSON request body within `limits` (see checkJsonLimits), answering as Fastify's
 * default parser did: an empty body and invalid JSON are INVALID_JSON, and so is prototype
 * poisoning; a leading byte-order mark is ignored.
 * @throws ServingError INVALID_JSON or PAYLOAD_TOO_LARGE
 */
export function parseJsonBody(body: Buffer, limits: JsonBodyLimits): unknown {
  checkLimits(limits);
  if (body.length === 0) throw errors.INVALID_JSON('The JSON body is empty');
  checkJsonLimits(body, limits);
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw errors.INVALID_JSON(undefined, { cause: err });
  }
  if (value !== null && typeof value === 'object' && (SUSPECT_PROTO.test(text) || SUSPECT_CONSTRUCTOR.test(text))) refusePrototypeKeys(value);
  return value;
}

/** A callback-style body parser, in the shape Fastify's `addContentTypeParser` takes. */
export type JsonBodyParser = (request: unknown, body: Buffer, done: (err: Error | null, value?: unknown) => void) => void;

/**
 * A content-type parser for `app.addContentTypeParser('application/json', { parseAs: 'buffer',
 * bodyLimit }, parser)`. With `'buffer'`, a body refused by its limits is never decoded.
 */
export function createJsonBodyParser(limits: JsonBodyLimits): JsonBodyParser {
  checkLimits(limits);
  const frozen = Object.freeze({ maxDepth: limits.maxDepth, maxContainers: limits.maxContainers, maxKeys: limits.maxKeys });
  return (_request, body, done) => {
    let value: unknown;
    try {
      value = parseJsonBody(body, frozen);
    } catch (err) {
      done(err as Error);
      return;
    }
    done(null, value);
  };
}
