/**
 * A client of the Open Inference Protocol over gRPC (proto/grpc_service.proto,
 * `inference.GRPCInferenceService`) for the benchmarks, as tritonclient's gRPC client sends
 * requests: every input in `raw_input_contents` (FP32 little-endian; a BYTES element as a
 * 4-byte little-endian length then its bytes), outputs answered in `raw_output_contents`.
 * Unary `ModelInfer` on one channel (HTTP/2 multiplexes the callers over one connection, as a
 * gRPC client does), or one `ModelStreamInfer` stream per caller.
 *
 * A request is either a message, serialized by every call (as tritonclient does), or one
 * serialized once by `encode` and sent as it is by every call, as the HTTP benchmarks send one
 * body built once (v2-requests.ts): for a 4.8 MB tensor, protobufjs's per-call encoding (two
 * copies of the tensor, and the garbage) added 4–6 ms to a lone caller's latency (medians of 40
 * and 80 calls, 2026-12-01), time in which the server waits for a request it never sees.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface GrpcInferRequestMessage {
  readonly model_name: string;
  readonly inputs: ReadonlyArray<{ readonly name: string; readonly datatype: string; readonly shape: readonly number[] }>;
  readonly raw_input_contents: readonly Buffer[];
}

export interface GrpcInferResponseMessage {
  readonly model_name: string;
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly datatype: string; readonly shape: readonly number[] }>;
  readonly raw_output_contents: readonly Buffer[];
}

/** A request serialized once (`V2GrpcClient.encode`), sent as it is. */
export interface EncodedGrpcRequest {
  readonly encoded: Buffer;
}

export type GrpcRequest = GrpcInferRequestMessage | EncodedGrpcRequest;

export interface StreamResponse {
  readonly error_message: string;
  readonly infer_response: GrpcInferResponseMessage | null;
}

export interface V2GrpcClient {
  /** `request` serialized once, for calls that send it as it is. */
  encode(request: GrpcInferRequestMessage): EncodedGrpcRequest;
  /** One unary ModelInfer; rejects with the gRPC error, or when `signal` aborts (the call is cancelled). */
  infer(request: GrpcRequest, signal: AbortSignal, timeoutMs: number): Promise<GrpcInferResponseMessage>;
  /** A ModelStreamInfer stream answering one request at a time, in order. */
  openStream(): V2GrpcStream;
  close(): void;
}

export interface V2GrpcStream {
  /** Writes one request and waits for its answer; rejects on an `error_message`, the stream's end or `signal`. */
  infer(request: GrpcRequest, signal: AbortSignal): Promise<GrpcInferResponseMessage>;
  close(): void;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** FP32 `data` of `shape` as one raw input. */
export function fp32GrpcRequest(model: string, name: string, shape: readonly number[], data: Float32Array): GrpcInferRequestMessage {
  let bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!LITTLE_ENDIAN) {
    bytes = Buffer.alloc(data.length * 4);
    data.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  }
  return { model_name: model, inputs: [{ name, datatype: 'FP32', shape: [...shape] }], raw_input_contents: [bytes] };
}

/** Encoded images as one BYTES input of shape [n], raw. */
export function bytesGrpcRequest(model: string, name: string, elements: readonly Uint8Array[]): GrpcInferRequestMessage {
  const parts: Buffer[] = [];
  for (const e of elements) {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(e.length);
    parts.push(length, Buffer.from(e.buffer, e.byteOffset, e.byteLength));
  }
  return { model_name: model, inputs: [{ name, datatype: 'BYTES', shape: [elements.length] }], raw_input_contents: [Buffer.concat(parts)] };
}

/** The FP32 values of output `name`, or an Error saying why the answer is not that output of `shape`. */
export function readGrpcFp32Output(response: GrpcInferResponseMessage, name: string, shape: readonly number[]): Float32Array | Error {
  const index = response.outputs.findIndex((o) => o.name === name);
  if (index < 0) return new Error(`no output ${name}`);
  const out = response.outputs[index]!;
  if (out.datatype !== 'FP32') return new Error(`output ${name} is ${out.datatype}`);
  if (out.shape.join(',') !== shape.join(',')) return new Error(`output ${name} has shape [${out.shape.join(', ')}], expected [${shape.join(', ')}]`);
  const bytes = response.raw_output_contents[index];
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes === undefined || bytes.length !== count * 4) return new Error(`output ${name} has ${bytes?.length ?? 0} raw bytes for shape [${shape.join(', ')}]`);
  const data = new Float32Array(count);
  for (let k = 0; k < count; k++) data[k] = bytes.readFloatLE(k * 4);
  return data;
}

/** Why an answer is not FP32 output `name` of `shape`, or `undefined` (the cheap check of the load loop: no copy). */
export function checkGrpcFp32Answer(response: GrpcInferResponseMessage, name: string, shape: readonly number[]): string | undefined {
  const index = response.outputs.findIndex((o) => o.name === name);
  if (index < 0) return `no output ${name}`;
  const out = response.outputs[index]!;
  if (out.datatype !== 'FP32') return `output ${name} is ${out.datatype}`;
  if (out.shape.join(',') !== shape.join(',')) return `output ${name} has shape [${out.shape.join(', ')}], expected [${shape.join(', ')}]`;
  if (response.raw_output_contents[index]?.length !== shape.reduce((a, b) => a * b, 4)) return `output ${name} has the wrong number of raw bytes`;
  return undefined;
}

export function abortError(): Error {
  return Object.assign(new Error('aborted'), { code: 'ABORTED' });
}

/**
 * A ModelStreamInfer stream's caller side, whatever writes the messages: one request at a time,
 * each answered by the next message (`answered`); a failure (`fail`) ends every later call.
 */
export function createStreamLine(
  write: (request: GrpcRequest) => void,
  cancel: () => void,
): { readonly stream: V2GrpcStream; answered(message: StreamResponse): void; fail(err: unknown): void } {
  let waiting: { resolve: (r: GrpcInferResponseMessage) => void; reject: (e: unknown) => void } | undefined;
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    waiting?.reject(err);
    waiting = undefined;
  };
  const answered = (message: StreamResponse) => {
    const w = waiting;
    waiting = undefined;
    if (w === undefined) return;
    if (message.error_message !== '' || message.infer_response === null) w.reject(new Error(message.error_message || 'no infer_response'));
    else w.resolve(message.infer_response);
  };
  const stream: V2GrpcStream = {
    infer(request, signal) {
      return new Promise((resolve, reject) => {
        if (failure !== undefined) return reject(failure);
        if (signal.aborted) return reject(abortError());
        const onAbort = () => fail(abortError());
        signal.addEventListener('abort', onAbort, { once: true });
        waiting = {
          resolve: (r) => (signal.removeEventListener('abort', onAbort), resolve(r)),
          reject: (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
        };
        write(request);
      });
    },
    close: cancel,
  };
  return { stream, answered, fail };
}

/** ModelInfer's and ModelStreamInfer's paths and (de)serializers, from the .proto file at `protoPath`. */
export function loadInferenceMethods(protoPath: string) {
  const definition = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const service = definition['inference.GRPCInferenceService'] as protoLoader.ServiceDefinition;
  const unaryMethod = service.ModelInfer!;
  const streamMethod = service.ModelStreamInfer!;
  return {
    unaryPath: unaryMethod.path,
    streamPath: streamMethod.path,
    /** A request's message bytes: serialized now, or as `encode` serialized it once. */
    serialize: (request: GrpcRequest): Buffer => ('encoded' in request ? request.encoded : unaryMethod.requestSerialize(request)),
    deserializeAnswer: unaryMethod.responseDeserialize as (bytes: Buffer) => GrpcInferResponseMessage,
    deserializeStreamAnswer: streamMethod.responseDeserialize as (bytes: Buffer) => StreamResponse,
    encode: (request: GrpcInferRequestMessage): EncodedGrpcRequest => ({ encoded: unaryMethod.requestSerialize(request) }),
  };
}

/** A client of the server at `address` (`127.0.0.1:port`), loading the .proto file at `protoPath`. */
export function createV2GrpcClient(address: string, protoPath: string): V2GrpcClient {
  const { unaryPath, streamPath, serialize, deserializeAnswer, deserializeStreamAnswer, encode } = loadInferenceMethods(protoPath);
  // No client-side size limit: the server's is what the benchmark meets.
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
  });

  return {
    encode,
    infer(request, signal, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (signal.aborted) return reject(abortError());
        const call = client.makeUnaryRequest(unaryPath, serialize, deserializeAnswer, request, { deadline: Date.now() + timeoutMs }, (err, response) => {
          signal.removeEventListener('abort', cancel);
          if (err) reject(err);
          else resolve(response!);
        });
        const cancel = () => call.cancel();
        signal.addEventListener('abort', cancel, { once: true });
      });
    },
    openStream() {
      const stream = client.makeBidiStreamRequest(streamPath, serialize, deserializeStreamAnswer);
      const line = createStreamLine(
        (request) => stream.write(request),
        () => stream.cancel(),
      );
      stream.on('data', line.answered);
      stream.on('error', line.fail);
      stream.on('end', () => line.fail(new Error('the stream ended')));
      return line.stream;
    },
    close() {
      client.close();
    },
  };
}
