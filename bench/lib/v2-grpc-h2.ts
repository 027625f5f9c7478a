/**
 * The benchmarks' lean gRPC client: the same calls as v2-grpc.ts's grpc-js client (unary
 * ModelInfer on one HTTP/2 connection shared by every caller, or one ModelStreamInfer stream
 * per caller), made directly with Node's HTTP/2 (nghttp2 frames them; this module only writes
 * gRPC's 5-byte message prefix and reads the status from the trailers).
 *
 * Why: the benchmark's clients share the server's two cores. grpc-js's client spends about
 * 1 ms of CPU a call (its channel, filters, metadata and status machinery), 3–5× what the HTTP
 * client spends a request, and that CPU comes out of the server's inference threads (which run
 * below the benchmark process's priority, INFERENCE_NICE): measured that way, gRPC paid for its
 * client. A gRPC user's client runs on another machine, and perf_analyzer's is gRPC core in C++.
 * The server cannot tell the two clients apart: the same HTTP/2 requests, headers and messages
 * (tests with grpc-js and NVIDIA's tritonclient show it speaks to real clients).
 */
import http2 from 'node:http2';
import { abortError, createStreamLine, loadInferenceMethods, type GrpcRequest, type V2GrpcClient, type V2GrpcStream } from './v2-grpc.js';

/** A gRPC failure as grpc-js reports one: `code` (a number) and `details`. */
function statusError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details });
}

/** gRPC's length-prefixed messages out of a stream of DATA chunks. */
export function createMessageReader(onMessage: (message: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  return (chunk) => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    for (;;) {
      if (pendingBytes < 5) return;
      // The prefix whole in the first buffer; the message is joined only once it is all here.
      if ((pending[0] as Buffer).length < 5) pending = [Buffer.concat(pending, pendingBytes)];
      const first = pending[0] as Buffer;
      if (first[0] !== 0) throw new Error('compressed gRPC message: not asked for');
      const length = first.readUInt32BE(1);
      if (pendingBytes < 5 + length) return;
      const all = pending.length === 1 ? first : Buffer.concat(pending, pendingBytes);
      onMessage(all.subarray(5, 5 + length));
      const rest = all.subarray(5 + length);
      pending = rest.length > 0 ? [rest] : [];
      pendingBytes = rest.length;
    }
  };
}

/** A client of the server at `address` (`127.0.0.1:port`), loading the .proto file at `protoPath`. */
export function createV2GrpcH2Client(address: string, protoPath: string): V2GrpcClient {
  const { unaryPath, streamPath, serialize, deserializeAnswer, deserializeStreamAnswer, encode } = loadInferenceMethods(protoPath);
  // Requests are framed once each: a benchmark sends the same request objects again and again.
  const framedCache = new WeakMap<object, Buffer>();
  const framed = (request: GrpcRequest): Buffer => {
    let bytes = framedCache.get(request);
    if (bytes === undefined) {
      const message = serialize(request);
      bytes = Buffer.allocUnsafe(5 + message.length);
      bytes[0] = 0;
      bytes.writeUInt32BE(message.length, 1);
      message.copy(bytes, 5);
      framedCache.set(request, bytes);
    }
    return bytes;
  };
  // Windows as large as HTTP/2 allows, as gRPC core's BDP probing ends up for large messages.
  const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: 2 ** 31 - 1 } });
  session.on('connect', () => session.setLocalWindowSize(2 ** 31 - 1));
  session.on('error', () => undefined);
  const headers = (path: string, timeoutMs?: number): http2.OutgoingHttpHeaders => ({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...(timeoutMs === undefined ? {} : { 'grpc-timeout': `${Math.max(1, Math.round(timeoutMs))}m` }),
  });

  return {
    encode,
    infer(request, signal, timeoutMs) {
      return new Promise((resolve, reject) => {
        if (signal.aborted) return reject(abortError());
        const stream = session.request(headers(unaryPath, timeoutMs));
        let answer: Buffer | undefined;
        let status: { code: number; details: string } | undefined;
        const read = createMessageReader((message) => (answer = message));
        const onStatus = (h: http2.IncomingHttpHeaders) => {
          if (h['grpc-status'] !== undefined) status = { code: Number(h['grpc-status']), details: decodeURIComponent(String(h['grpc-message'] ?? '')) };
        };
        const cancel = () => stream.close(http2.constants.NGHTTP2_CANCEL);
        signal.addEventListener('abort', cancel, { once: true });
        stream.on('response', onStatus);
        stream.on('trailers', onStatus);
        stream.on('data', (chunk: Buffer) => {
          try {
            read(chunk);
          } catch (err) {
            stream.destroy(err as Error);
          }
        });
        stream.on('error', () => undefined);
        stream.on('close', () => {
          signal.removeEventListener('abort', cancel);
          if (signal.aborted) return reject(abortError());
          if (status === undefined) return reject(statusError(13, `the call closed without a status (RST ${stream.rstCode})`));
          if (status.code !== 0) return reject(statusError(status.code, status.details));
          if (answer === undefined) return reject(statusError(13, 'no response message'));
          try {
            resolve(deserializeAnswer(answer));
          } catch (err) {
            reject(err);
          }
        });
        stream.end(framed(request));
      });
    },
    openStream(): V2GrpcStream {
      const stream = session.request(headers(streamPath));
      const line = createStreamLine(
        (request) => stream.write(framed(request)),
        () => stream.close(http2.constants.NGHTTP2_CANCEL),
      );
      const read = createMessageReader((bytes) => line.answered(deserializeStreamAnswer(bytes)));
      stream.on('data', (chunk: Buffer) => {
        try {
          read(chunk);
        } catch (err) {
          line.fail(err);
          stream.destroy();
        }
      });
      stream.on('trailers', (h) => line.fail(statusError(Number(h['grpc-status'] ?? 13), String(h['grpc-message'] ?? 'the stream ended'))));
      stream.on('error', line.fail);
      stream.on('close', () => line.fail(new Error('the stream ended')));
      return line.stream;
    },
    close() {
      session.close();
    },
  };
}
