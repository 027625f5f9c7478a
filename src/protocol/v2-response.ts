/**
 * v2 inference answers as the HTTP edge sends them: a JSON document, or, when any output is
 * binary, a JSON header followed by the binary outputs back to back in output order (Triton's
 * binary tensor extension): FP32 little-endian, BYTES elements each a 4-byte little-endian
 * length then the bytes. The caller sends `Inference-Header-Content-Length: headerLength`
 * with a binary answer.
 */
import type { InferOutput, InferResponse } from './v2-infer.js';

export interface EncodedResponse {
  /** The JSON document (the whole answer when `tail` is empty). */
  readonly header: Buffer;
  /** Binary outputs in order; empty when every output is JSON. */
  readonly tail: readonly Buffer[];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function fp32Bytes(data: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out = Buffer.alloc(data.length * 4);
  data.forEach((v, i) => out.writeFloatLE(v, i * 4));
  return out;
}

function bytesElements(elements: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of elements) {
    const bytes = Buffer.from(e, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/** An output in the binary tensor layout (HTTP's binary tail, gRPC's raw_output_contents). */
export function encodeOutputBytes(output: InferOutput): Buffer {
  return output.datatype === 'FP32' ? fp32Bytes(output.data) : bytesElements(output.elements);
}

function outputJson(output: InferOutput, tail: Buffer[]) {
  const base = { name: output.name, datatype: output.datatype, shape: output.shape };
  if (!output.binary) return { ...base, data: output.datatype === 'FP32' ? Array.from(output.data) : output.elements };
  const bytes = encodeOutputBytes(output);
  tail.push(bytes);
  return { ...base, parameters: { binary_data_size: bytes.length } };
}

export function encodeInferResponse(response: InferResponse): EncodedResponse {
  const tail: Buffer[] = [];
  const outputs = response.outputs.map((o) => outputJson(o, tail));
  const document = {
    model_name: response.modelName,
    model_version: response.modelVersion,
    ...(response.id !== undefined ? { id: response.id } : {}),
    outputs,
  };
  return { header: Buffer.from(JSON.stringify(document)), tail };
}
