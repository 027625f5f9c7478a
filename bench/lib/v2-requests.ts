/**
 * Open Inference Protocol (v2) request bodies as clients send them, and their answers read
 * back, for the benchmarks. Two framings of the same tensors:
 * - JSON: the whole body is JSON; FP32 `data` is a flat array of numbers, BYTES `data` base64
 *   strings (this server's JSON form of encoded images).
 * - binary (Triton's binary tensor extension): a JSON header of `Inference-Header-Content-Length`
 *   bytes, then each tensor's bytes (FP32 little-endian; a BYTES element as a 4-byte
 *   little-endian length then its bytes). As tritonclient sends it: no Content-Type, and
 *   `parameters.binary_data_output: true` so the answer comes back binary too.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface V2Request {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface V2Output {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  /** FP32 outputs only. */
  readonly data: Float32Array | undefined;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function jsonRequest(document: unknown): V2Request {
  return { headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(document)) };
}

function binaryRequest(header: unknown, tail: Buffer): V2Request {
  const json = Buffer.from(JSON.stringify(header));
  return { headers: { 'inference-header-content-length': String(json.length) }, body: Buffer.concat([json, tail]) };
}

/**
 * FP32 as JSON. Each float32 is written as the shortest decimal that reads back as the same
 * double, exactly what tritonclient's JSON holds (`json.dumps` of numpy's `.item()`): about 19
 * bytes a value for preprocessed pixels.
 */
export function fp32JsonRequest(name: string, shape: readonly number[], data: Float32Array): V2Request {
  return jsonRequest({ inputs: [{ name, shape, datatype: 'FP32', data: Array.from(data) }] });
}

export function fp32BinaryRequest(name: string, shape: readonly number[], data: Float32Array): V2Request {
  let bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!LITTLE_ENDIAN) {
    bytes = Buffer.alloc(data.length * 4);
    data.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  }
  const header = { inputs: [{ name, shape, datatype: 'FP32', parameters: { binary_data_size: bytes.length } }], parameters: { binary_data_output: true } };
  return binaryRequest(header, bytes);
}

/** Encoded images as one BYTES tensor of shape [n], base64 in JSON. */
export function bytesJsonRequest(name: string, elements: readonly Uint8Array[]): V2Request {
  const data = elements.map((e) => Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('base64'));
  return jsonRequest({ inputs: [{ name, shape: [elements.length], datatype: 'BYTES', data }] });
}

export function bytesBinaryRequest(name: string, elements: readonly Uint8Array[]): V2Request {
  const parts: Buffer[] = [];
  for (const e of elements) {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(e.length);
    parts.push(length, Buffer.from(e.buffer, e.byteOffset, e.byteLength));
  }
  const tail = Buffer.concat(parts);
  const header = {
    inputs: [{ name, shape: [elements.length], datatype: 'BYTES', parameters: { binary_data_size: tail.length } }],
    parameters: { binary_data_output: true },
  };
  return binaryRequest(header, tail);
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The outputs of an inference answer, JSON or binary (told apart by
 * `Inference-Header-Content-Length`). Throws an Error saying what is malformed.
 */
export function readV2Answer(headers: IncomingHttpHeaders, body: Buffer): V2Output[] {
  const lengthHeader = headers['inference-header-content-length'];
  const headerLength = lengthHeader === undefined ? body.length : Number(lengthHeader);
  if (!Number.isSafeInteger(headerLength) || headerLength < 0 || headerLength > body.length) {
    throw new Error(`Inference-Header-Content-Length is ${String(lengthHeader)}, but the answer holds ${body.length} bytes`);
  }
  const document: unknown = JSON.parse(body.subarray(0, headerLength).toString('utf8'));
  if (!isObject(document) || !Array.isArray(document.outputs)) throw new Error('the answer has no outputs array');
  let offset = headerLength;
  const outputs = document.outputs.map((o: unknown, i): V2Output => {
    if (!isObject(o) || typeof o.name !== 'string' || typeof o.datatype !== 'string' || !Array.isArray(o.shape)) throw new Error(`outputs[${i}] is malformed`);
    const shape = o.shape as number[];
    const size = isObject(o.parameters) ? o.parameters.binary_data_size : undefined;
    if (size === undefined) {
      const data = o.datatype === 'FP32' && Array.isArray(o.data) ? Float32Array.from(o.data as number[]) : undefined;
      return { name: o.name, datatype: o.datatype, shape, data };
    }
    if (!Number.isSafeInteger(size) || (size as number) < 0 || offset + (size as number) > body.length)
      throw new Error(`outputs[${i}].parameters.binary_data_size ${String(size)} runs past the answer`);
    const bytes = body.subarray(offset, offset + (size as number));
    offset += size as number;
    let data: Float32Array | undefined;
    if (o.datatype === 'FP32') {
      if (bytes.length % 4 !== 0) throw new Error(`outputs[${i}] has ${bytes.length} bytes of FP32`);
      data = new Float32Array(bytes.length / 4);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let k = 0; k < data.length; k++) data[k] = view.getFloat32(k * 4, true);
    }
    return { name: o.name, datatype: o.datatype, shape, data };
  });
  if (offset !== body.length) throw new Error(`${body.length - offset} bytes follow the last binary output`);
  return outputs;
}

/**
 * Why an answer is not the one FP32 output `name` of `shape` in the framing asked for
 * (`binary`), or `undefined` when it is.
 */
export function checkFp32Answer(headers: IncomingHttpHeaders, body: Buffer, name: string, shape: readonly number[], binary: boolean): string | undefined {
  let outputs: V2Output[];
  try {
    outputs = readV2Answer(headers, body);
  } catch (err) {
    return (err as Error).message;
  }
  const isBinary = headers['inference-header-content-length'] !== undefined;
  if (isBinary !== binary) return `the answer is ${isBinary ? 'binary' : 'JSON'}, expected ${binary ? 'binary' : 'JSON'}`;
  const out = outputs.find((o) => o.name === name);
  if (out === undefined) return `no output ${name}`;
  if (out.datatype !== 'FP32' || out.data === undefined) return `output ${name} is ${out.datatype} without FP32 data`;
  if (out.shape.join(',') !== shape.join(',')) return `output ${name} has shape [${out.shape.join(', ')}], expected [${shape.join(', ')}]`;
  if (out.data.length !== shape.reduce((a, b) => a * b, 1)) return `output ${name} holds ${out.data.length} values for shape [${shape.join(', ')}]`;
  return undefined;
}
