/**
 * The Open Inference Protocol's protobuf messages (proto/grpc_service.proto, as
 * @grpc/proto-loader hands them over: field names as in the .proto, int64 as numbers, bytes as
 * Buffers, oneofs named) to and from the transport-free request and answer of
 * protocol/v2-request.ts and v2-infer.ts, and catalog errors to gRPC status codes. No gRPC
 * runtime here.
 *
 * As Triton does: an input's values come in `raw_input_contents` (one entry per input, in
 * input order, the binary tensor layout: FP32 little-endian, BYTES elements each a 4-byte
 * little-endian length then the bytes) or in its typed `contents` (`fp32_contents`,
 * `bytes_contents`), never both; every output is answered in `raw_output_contents`, in output
 * order. A BYTES input carries encoded images, raw (no base64).
 */
import { errors, type ServingError } from '../errors.js';
import type { InferOutput, InferResponse } from '../protocol/v2-infer.js';
import {
  buildInput,
  newImageBudget,
  parseShape,
  quoteValue,
  type DecodeLimits,
  type InferRequest,
  type RequestedOutput,
  type TensorSource,
} from '../protocol/v2-request.js';
import { encodeOutputBytes } from '../protocol/v2-response.js';

/** `InferParameter`: one of its typed values. */
export interface InferParameter {
  readonly bool_param?: boolean;
  readonly int64_param?: number;
  readonly string_param?: string;
  readonly double_param?: number;
  readonly uint64_param?: number;
  readonly parameter_choice?: string;
}

export interface InferTensorContents {
  readonly fp32_contents?: readonly number[];
  readonly bytes_contents?: readonly Uint8Array[];
  readonly bool_contents?: readonly boolean[];
  readonly int_contents?: readonly number[];
  readonly int64_contents?: readonly number[];
  readonly uint_contents?: readonly number[];
  readonly uint64_contents?: readonly number[];
  readonly fp64_contents?: readonly number[];
}

export interface GrpcInferInputTensor {
  readonly name?: string;
  readonly datatype?: string;
  readonly shape?: readonly number[];
  readonly parameters?: Readonly<Record<string, InferParameter>>;
  readonly contents?: InferTensorContents | null;
}

export interface GrpcRequestedOutput {
  readonly name?: string;
  readonly parameters?: Readonly<Record<string, InferParameter>>;
}

export interface GrpcInferRequest {
  readonly model_name?: string;
  readonly model_version?: string;
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, InferParameter>>;
  readonly inputs?: readonly GrpcInferInputTensor[];
  readonly outputs?: readonly GrpcRequestedOutput[];
  readonly raw_input_contents?: readonly Uint8Array[];
}

export interface GrpcInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: Array<{ name: string; datatype: string; shape: number[] }>;
  raw_output_contents: Buffer[];
}

const TYPED_FIELDS = [
  'fp32_contents',
  'bytes_contents',
  'bool_contents',
  'int_contents',
  'int64_contents',
  'uint_contents',
  'uint64_contents',
  'fp64_contents',
] as const;

/** The typed contents an input carries, or `undefined` when it has none. */
function typedValues(contents: InferTensorContents | null | undefined, what: string): readonly number[] | readonly Uint8Array[] | undefined {
  if (contents === null || contents === undefined) return undefined;
  const present = TYPED_FIELDS.filter((f) => (contents[f]?.length ?? 0) > 0);
  if (present.length === 0) return undefined;
  if (present.length > 1) throw errors.INVALID_TENSOR(`${what}.contents holds ${present.join(' and ')}: send one`);
  if (present[0] === 'fp32_contents') return contents.fp32_contents!;
  if (present[0] === 'bytes_contents') return contents.bytes_contents!;
  throw errors.INVALID_TENSOR(`${what}.contents.${present[0]} is not supported: send fp32_contents or bytes_contents, or raw_input_contents`);
}

function classificationOf(output: GrpcRequestedOutput, what: string): number | undefined {
  const p = output.parameters?.classification;
  if (p === undefined) return undefined;
  const value = p.int64_param ?? p.uint64_param ?? p.double_param;
  if (!Number.isSafeInteger(value) || (value as number) < 1)
    throw errors.INVALID_REQUEST(`${what}.parameters.classification must be an integer from 1 up, got ${quoteValue(value)}`);
  return value;
}

export function decodeGrpcInferRequest(request: GrpcInferRequest, limits: DecodeLimits): InferRequest {
  const inputs = request.inputs ?? [];
  const raw = request.raw_input_contents ?? [];
  if (raw.length > 0 && raw.length !== inputs.length) {
    throw errors.INVALID_TENSOR(`raw_input_contents holds ${raw.length} entries for ${inputs.length} inputs: send one per input, in input order`);
  }
  const budget = newImageBudget(limits);
  const decoded = inputs.map((input, i) => {
    const what = `inputs[${i}]`;
    const typed = typedValues(input.contents, what);
    if (typed !== undefined && raw.length > 0)
      throw errors.INVALID_TENSOR(`${what} has typed contents and the request has raw_input_contents: send one or the other`);
    let source: TensorSource;
    if (raw.length > 0) source = { kind: 'binary', bytes: raw[i]! };
    else if (typed !== undefined) source = { kind: 'elements', values: typed };
    else throw errors.INVALID_TENSOR(`${what} has no contents and the request no raw_input_contents`);
    return buildInput(input.name, input.datatype, parseShape(input.shape, what, limits), source, what, limits, budget);
  });
  const outputs: RequestedOutput[] | undefined =
    (request.outputs?.length ?? 0) === 0
      ? undefined
      : request.outputs!.map((o, i) => ({ name: o.name ?? '', binary: true, classification: classificationOf(o, `outputs[${i}]`) }));
  return { id: request.id === '' ? undefined : request.id, inputs: decoded, outputs, binaryOutput: true };
}

export function encodeGrpcInferResponse(response: InferResponse): GrpcInferResponse {
  return {
    model_name: response.modelName,
    model_version: response.modelVersion,
    id: response.id ?? '',
    outputs: response.outputs.map((o: InferOutput) => ({ name: o.name, datatype: o.datatype, shape: [...o.shape] })),
    raw_output_contents: response.outputs.map((o) => encodeOutputBytes(o)),
  };
}

/** gRPC status codes (grpc/status.h), by name. */
export const GRPC_CODE = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The one mapping of the catalog's HTTP statuses onto gRPC codes. */
export function grpcCodeOf(e: ServingError): number {
  switch (e.statusCode) {
    case 401:
      return GRPC_CODE.UNAUTHENTICATED;
    case 403:
      // The only 403, MODEL_CONTROL_DISABLED: the server's mode, not the request, is at fault.
      return GRPC_CODE.FAILED_PRECONDITION;
    case 404:
      return GRPC_CODE.NOT_FOUND;
    case 413:
    case 429:
      return GRPC_CODE.RESOURCE_EXHAUSTED;
    case 499:
      return GRPC_CODE.CANCELLED;
    case 503:
      return GRPC_CODE.UNAVAILABLE;
    case 504:
      return GRPC_CODE.DEADLINE_EXCEEDED;
    default:
      return e.statusCode >= 500 ? GRPC_CODE.INTERNAL : GRPC_CODE.INVALID_ARGUMENT;
  }
}
