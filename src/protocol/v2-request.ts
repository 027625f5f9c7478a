/**
 * Open Inference Protocol (v2) inference requests, decoded and validated, whatever carried
 * them: JSON, JSON with Triton's binary tensor extension (HTTP), or protobuf (gRPC). The edges
 * turn bytes into an `InferRequest`; v2-infer.ts runs it; v2-response.ts encodes the answer.
 * No HTTP here.
 *
 * Binary tensor extension (Triton's docs/protocol/extension_binary_data.md): the body is a
 * JSON header of `Inference-Header-Content-Length` bytes, then each input that has
 * `parameters.binary_data_size` holds that many bytes, back to back in input order: numbers
 * little-endian, `BYTES` elements each a 4-byte little-endian length then the bytes. Every
 * framing fault is 400 INVALID_TENSOR, and nothing is allocated from a size a client claims
 * before the bytes are there: sizes are checked against what arrived first.
 */
import { errors } from '../errors.js';
import { parseJsonBody, type JsonBodyLimits } from './json-body.js';
import { checkImageCount, decodeBase64 } from './images.js';

/** A datatype this server takes as input. */
export type InputDatatype = 'FP32' | 'BYTES';

export interface Fp32Input {
  readonly name: string;
  readonly datatype: 'FP32';
  readonly shape: readonly number[];
  /** Row-major values, `product(shape)` of them. */
  readonly data: Float32Array;
}

export interface BytesInput {
  readonly name: string;
  readonly datatype: 'BYTES';
  readonly shape: readonly number[];
  /** One element per image, `product(shape)` of them: the raw bytes (not base64). */
  readonly elements: readonly Uint8Array[];
}

export type InferInput = Fp32Input | BytesInput;

/** An output the client asked for. */
export interface RequestedOutput {
  readonly name: string;
  /** `parameters.binary_data`: answer this output in binary; `undefined` follows the request. */
  readonly binary: boolean | undefined;
  /** `parameters.classification`: the top N classes as `"<value>:<index>[:<label>]"` strings. */
  readonly classification: number | undefined;
}

export interface InferRequest {
  readonly id: string | undefined;
  readonly inputs: readonly InferInput[];
  /** `undefined`: every output of the model. */
  readonly outputs: readonly RequestedOutput[] | undefined;
  /** `parameters.binary_data_output`: outputs in binary unless an output says otherwise. */
  readonly binaryOutput: boolean;
}

export interface DecodeLimits {
  /** Elements a tensor may hold, counted from its shape before its data is read. */
  readonly maxElements: number;
  /** Images (BYTES elements) or FP32 items (the first dimension) a request may carry. */
  readonly maxImages: number;
  /** Bytes of images, all BYTES elements together. */
  readonly maxImageBytes: number;
  readonly json: JsonBodyLimits;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A client's value, quoted for a message: strings cut to `max` characters, anything else by its
 * kind. Never `String(value)`: `{"toString": 1}` makes that throw.
 */
export function quoteValue(value: unknown, max = 64): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, max));
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (value === undefined) return '(none)';
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * Visits the leaves of nested arrays in row-major order without recursion: JSON nesting is
 * bounded by the parser, but a recursive walk would still grow the stack with it. Nesting deeper
 * than `maxDepth` (the tensor's rank) is refused.
 */
function forEachLeaf(data: unknown, maxDepth: number, visit: (leaf: unknown) => void): void {
  if (!Array.isArray(data)) {
    visit(data);
    return;
  }
  const arrays: unknown[][] = [data];
  const positions: number[] = [0];
  while (arrays.length > 0) {
    const depth = arrays.length - 1;
    const array = arrays[depth]!;
    const i = positions[depth]!;
    if (i >= array.length) {
      arrays.pop();
      positions.pop();
      continue;
    }
    positions[depth] = i + 1;
    const v = array[i];
    if (Array.isArray(v)) {
      if (arrays.length >= maxDepth) throw errors.INVALID_TENSOR(`Tensor data is nested deeper than its shape's ${maxDepth} dimensions`);
      arrays.push(v);
      positions.push(0);
    } else {
      visit(v);
    }
  }
}

/**
 * Flattens nested or flat tensor data (row-major), checking every element is a number that
 * stays finite as FP32 (JSON's 1e39 is a finite double but infinity as a float).
 */
export function flattenNumbers(data: unknown, expected: number, maxDepth: number): Float32Array {
  const out = new Float32Array(expected);
  let n = 0;
  forEachLeaf(data, maxDepth, (v) => {
    if (typeof v !== 'number' || !Number.isFinite(Math.fround(v))) throw errors.INVALID_TENSOR('Tensor data must hold only numbers within FP32 range');
    if (n >= expected) throw errors.INVALID_TENSOR(`Tensor data holds more than the ${expected} values its shape says`);
    out[n++] = v;
  });
  if (n !== expected) throw errors.INVALID_TENSOR(`Tensor data holds ${n} values; its shape says ${expected}`);
  return out;
}

/** The elements of nested or flat BYTES data, refusing more than `expected` early. */
function flattenElements(data: unknown, expected: number, maxDepth: number): unknown[] {
  const out: unknown[] = [];
  forEachLeaf(data, maxDepth, (v) => {
    if (out.length >= expected) throw errors.INVALID_TENSOR(`BYTES data holds more than the ${expected} elements its shape says`);
    out.push(v);
  });
  if (out.length !== expected) throw errors.INVALID_TENSOR(`BYTES data holds ${out.length} elements; its shape says ${expected}`);
  return out;
}

/** A tensor's shape, checked and bounded, with its element count. */
export interface TensorShape {
  readonly shape: number[];
  readonly count: number;
}

/** Checks and bounds a shape before any of its values is read. */
export function parseShape(shape: unknown, what: string, limits: DecodeLimits): TensorShape {
  if (!Array.isArray(shape) || shape.length === 0 || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw errors.INVALID_TENSOR(`${what}.shape must be an array of 1 to 8 non-negative integers`);
  }
  let count = 1;
  for (const d of shape as number[]) {
    count *= d;
    if (count > limits.maxElements)
      throw errors.INVALID_TENSOR(`${what}.shape [${(shape as number[]).join(', ')}] holds more than ${limits.maxElements} elements`);
  }
  return { shape: shape as number[], count };
}

/** Reads `parameters` of a tensor or request: an object of strings, numbers and booleans. */
function parameters(value: unknown, what: string): Json {
  if (value === undefined) return {};
  if (!isObject(value)) throw errors.INVALID_REQUEST(`${what}.parameters must be an object`);
  return value;
}

function optionalBoolean(value: unknown, what: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw errors.INVALID_REQUEST(`${what} must be true or false, got ${quoteValue(value)}`);
  return value;
}

/** The binary tail of a request, read input by input. */
class Tail {
  private offset = 0;

  constructor(private readonly bytes: Uint8Array) {}

  take(size: unknown, what: string): Uint8Array {
    if (!Number.isSafeInteger(size) || (size as number) < 0)
      throw errors.INVALID_TENSOR(`${what}.parameters.binary_data_size must be a non-negative integer, got ${quoteValue(size)}`);
    const left = this.bytes.length - this.offset;
    if ((size as number) > left)
      throw errors.INVALID_TENSOR(`${what}.parameters.binary_data_size is ${size as number} bytes, but only ${left} follow the header`);
    const out = this.bytes.subarray(this.offset, this.offset + (size as number));
    this.offset += size as number;
    return out;
  }

  end(): void {
    const left = this.bytes.length - this.offset;
    if (left > 0) throw errors.INVALID_TENSOR(`${left} bytes follow the last input's binary data`);
  }
}

/** `BYTES` elements in binary form: each a 4-byte little-endian length, then its bytes. */
export function splitBytesElements(bytes: Uint8Array, expected: number, what: string): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (out.length >= expected) throw errors.INVALID_TENSOR(`${what} holds more than the ${expected} BYTES elements its shape says`);
    if (offset + 4 > bytes.length) throw errors.INVALID_TENSOR(`${what}: a BYTES element's 4-byte length is cut off`);
    const length = view.getUint32(offset, true);
    offset += 4;
    if (length > bytes.length - offset) throw errors.INVALID_TENSOR(`${what}: a BYTES element claims ${length} bytes, past the end of its tensor`);
    out.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  if (out.length !== expected) throw errors.INVALID_TENSOR(`${what} holds ${out.length} BYTES elements; its shape says ${expected}`);
  return out;
}

/** Where an input's values are: bytes in binary form, JSON `data`, or typed elements (gRPC). */
export type TensorSource =
  | { readonly kind: 'binary'; readonly bytes: Uint8Array }
  | { readonly kind: 'json'; readonly data: unknown }
  | { readonly kind: 'elements'; readonly values: readonly number[] | readonly Uint8Array[] };

/** Images and their bytes taken so far by one request's inputs. */
export interface ImageBudget {
  imageBytes: number;
  images: number;
}

export function newImageBudget(limits: DecodeLimits): ImageBudget {
  return { imageBytes: limits.maxImageBytes, images: 0 };
}

/**
 * One validated input, whatever carried it. The shape comes checked and bounded (`parseShape`,
 * before any value is read); the values must match it exactly.
 */
export function buildInput(
  name: unknown,
  datatype: unknown,
  { shape, count }: TensorShape,
  source: TensorSource,
  what: string,
  limits: DecodeLimits,
  budget: ImageBudget,
): InferInput {
  if (typeof name !== 'string') throw errors.INVALID_TENSOR(`${what}.name must be a string, got ${quoteValue(name)}`);
  if (datatype === 'FP32') {
    // Every model here takes a batch of items along the first dimension: refuse too many before
    // walking the data.
    checkImageCount(shape[0]!, limits.maxImages, 'items');
    if (source.kind !== 'binary') {
      const values = source.kind === 'json' ? source.data : source.values;
      return { name, datatype: 'FP32', shape, data: flattenNumbers(values, count, shape.length) };
    }
    const { bytes } = source;
    if (bytes.length !== count * 4)
      throw errors.INVALID_TENSOR(`${what}: ${bytes.length} bytes of FP32 data, but shape [${shape.join(', ')}] takes ${count * 4}`);
    // Copied: the offset need not be 4-byte aligned, and the request's buffer is not ours to keep.
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes);
    // A plain loop: TypedArray.every with a callback took 7–11 ms over 1.2M values, this 1 ms.
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) throw errors.INVALID_TENSOR(`${what} holds values that are not finite`);
    }
    return { name, datatype: 'FP32', shape, data };
  }
  if (datatype === 'BYTES') {
    checkImageCount(budget.images + count, limits.maxImages);
    budget.images += count;
    let elements: Uint8Array[];
    if (source.kind === 'json') {
      elements = flattenElements(source.data, count, shape.length).map((v, i) => {
        const bytes = decodeBase64(v, `${what}.data[${i}]`, Math.max(0, budget.imageBytes));
        budget.imageBytes -= bytes.length;
        return bytes;
      });
    } else {
      if (source.kind === 'binary') {
        elements = splitBytesElements(source.bytes, count, what);
      } else {
        if (source.values.length !== count) throw errors.INVALID_TENSOR(`${what} holds ${source.values.length} BYTES elements; its shape says ${count}`);
        if (!source.values.every((v) => v instanceof Uint8Array)) throw errors.INVALID_TENSOR(`${what}: BYTES elements must be bytes`);
        elements = [...(source.values as readonly Uint8Array[])];
      }
      for (const e of elements) budget.imageBytes -= e.length;
    }
    if (budget.imageBytes < 0) throw errors.PAYLOAD_TOO_LARGE(`The images exceed ${limits.maxImageBytes} bytes in all`);
    return { name, datatype: 'BYTES', shape, elements };
  }
  throw errors.INVALID_TENSOR(`${what}.datatype ${quoteValue(datatype, 16)} is not supported: send FP32 tensors or BYTES (encoded images)`);
}

function decodeInput(raw: unknown, index: number, tail: Tail | undefined, limits: DecodeLimits, budget: ImageBudget): InferInput {
  const what = `inputs[${index}]`;
  if (!isObject(raw)) throw errors.INVALID_TENSOR(`${what} must be an object`);
  if (typeof raw.name !== 'string') throw errors.INVALID_TENSOR(`${what}.name must be a string, got ${quoteValue(raw.name)}`);
  const params = parameters(raw.parameters, what);
  const binarySize = params.binary_data_size;
  if (binarySize !== undefined && raw.data !== undefined) throw errors.INVALID_TENSOR(`${what} has both data and parameters.binary_data_size`);
  if (binarySize !== undefined && tail === undefined)
    throw errors.INVALID_TENSOR(`${what} has parameters.binary_data_size but the request has no binary data (no Inference-Header-Content-Length)`);
  if (binarySize === undefined && raw.data === undefined) throw errors.INVALID_TENSOR(`${what} has no data`);
  // The shape is checked before the binary part is taken, so a wrong one names itself.
  const shape = parseShape(raw.shape, what, limits);
  const source: TensorSource = binarySize === undefined ? { kind: 'json', data: raw.data } : { kind: 'binary', bytes: tail!.take(binarySize, what) };
  return buildInput(raw.name, raw.datatype, shape, source, what, limits, budget);
}

function decodeOutputs(raw: unknown): RequestedOutput[] | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) throw errors.INVALID_REQUEST('`outputs` must be an array');
  return raw.map((o, i) => {
    const what = `outputs[${i}]`;
    if (!isObject(o) || typeof o.name !== 'string') throw errors.INVALID_REQUEST(`${what} must be an object with a string name`);
    const params = parameters(o.parameters, what);
    const classification = params.classification;
    if (classification !== undefined && !(Number.isSafeInteger(classification) && (classification as number) >= 1)) {
      throw errors.INVALID_REQUEST(`${what}.parameters.classification must be an integer from 1 up, got ${quoteValue(classification)}`);
    }
    return {
      name: o.name,
      binary: optionalBoolean(params.binary_data, `${what}.parameters.binary_data`),
      classification: classification as number | undefined,
    };
  });
}

/**
 * Decodes an HTTP inference request body.
 * @param headerLength `Inference-Header-Content-Length`: the JSON header's size when binary
 *   tensor data follows it; `undefined` when the whole body is JSON.
 */
export function decodeInferRequest(body: Uint8Array, headerLength: number | undefined, limits: DecodeLimits): InferRequest {
  let json: Uint8Array = body;
  let tail: Tail | undefined;
  if (headerLength !== undefined) {
    if (!Number.isSafeInteger(headerLength) || headerLength < 0 || headerLength > body.length) {
      throw errors.INVALID_TENSOR(`Inference-Header-Content-Length is ${headerLength}, but the body holds ${body.length} bytes`);
    }
    json = body.subarray(0, headerLength);
    tail = new Tail(body.subarray(headerLength));
  }
  const parsed = parseJsonBody(Buffer.from(json.buffer, json.byteOffset, json.byteLength), limits.json);
  if (!isObject(parsed) || !Array.isArray(parsed.inputs)) {
    throw errors.INVALID_REQUEST('Expected an inference request {"inputs": [{"name", "shape", "datatype", "data"}]}');
  }
  if (parsed.id !== undefined && typeof parsed.id !== 'string') throw errors.INVALID_REQUEST('`id` must be a string');
  const params = parameters(parsed.parameters, 'request');
  const budget = newImageBudget(limits);
  const inputs = parsed.inputs.map((raw, i) => decodeInput(raw, i, tail, limits, budget));
  tail?.end();
  return {
    id: parsed.id as string | undefined,
    inputs,
    outputs: decodeOutputs(parsed.outputs),
    binaryOutput: optionalBoolean(params.binary_data_output, 'parameters.binary_data_output') ?? false,
  };
}

/** Parses `Inference-Header-Content-Length` (absent: `undefined`; malformed: 400). */
export function parseHeaderLength(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d{1,15}$/.test(text.trim()))
    throw errors.INVALID_TENSOR(`Inference-Header-Content-Length must be a byte count, got ${quoteValue(text)}`);
  return Number(text.trim());
}
