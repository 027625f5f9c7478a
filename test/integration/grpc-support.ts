/**
 * The gRPC edge under test: a fresh app (the shared ResNet-20, or the gated stand-in worker)
 * with `startGrpcServer` on 127.0.0.1, port 0, fed from `app.serving` as the entry point feeds
 * it; @grpc/grpc-js clients made from the same .proto files; and the tensor framing of
 * `raw_input_contents` / `raw_output_contents`. Everything is closed in one `t.after`, in
 * order: clients, the gRPC server, then the app.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { BroadcastChannel } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { FastifyInstance } from 'fastify';
import { buildApp, SERVER_VERSION } from '../../src/app.js';
import { startGrpcServer, type GrpcServer } from '../../src/grpc/server.js';
import { GATE_CHANNEL, type GateCommand, type GateEvent } from '../fixtures/workers/gated-worker.js';
import { REPO_ROOT, RESNET20_CONFIG, RESNET20_DIR, tempRepository, testConfig } from '../helpers.js';

export { until } from './gated-app.js';

/** The model every app here serves. */
export const MODEL = 'resnet20';
export const ITEM_VALUES = 3 * 32 * 32;

const PROTO_DIR = join(REPO_ROOT, 'proto');
const GATED_WORKER = new URL('../fixtures/workers/gated-worker.js', import.meta.url);
/** Longest the gRPC server may wait for calls still open when a test ends, in ms. */
const CLOSE_TIMEOUT_MS = 2_000;

type Callback = (err: grpc.ServiceError | null, response: unknown) => void;
type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback) => grpc.ClientUnaryCall;

/** A generated client: its methods looked up by name. */
export type DynamicClient = grpc.Client & Record<string, unknown>;

function loadClients() {
  const options: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] };
  const inference = grpc.loadPackageDefinition(protoLoader.loadSync('grpc_service.proto', options)) as unknown as {
    inference: { GRPCInferenceService: grpc.ServiceClientConstructor };
  };
  const health = grpc.loadPackageDefinition(protoLoader.loadSync('health.proto', options)) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return { Inference: inference.inference.GRPCInferenceService, Health: health.grpc.health.v1.Health };
}

let clientConstructors: ReturnType<typeof loadClients> | undefined;

export interface CallOptions {
  readonly metadata?: Record<string, string>;
  /** Absolute deadline (a Date) or ms since the epoch. */
  readonly deadline?: grpc.Deadline;
}

function toMetadata(entries: Record<string, string> = {}): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(entries)) metadata.set(k, v);
  return metadata;
}

/** Starts a unary call; `call` cancels it, `response` settles with its answer or status. */
export function startUnary<Res = unknown>(
  client: DynamicClient,
  method: string,
  request: unknown,
  options: CallOptions = {},
): { call: grpc.ClientUnaryCall; response: Promise<Res> } {
  let call!: grpc.ClientUnaryCall;
  const response = new Promise<Res>((resolve, reject) => {
    const fn = client[method] as UnaryMethod;
    call = fn.call(client, request, toMetadata(options.metadata), options.deadline === undefined ? {} : { deadline: options.deadline }, (err, res) =>
      err ? reject(err) : resolve(res as Res),
    );
  });
  return { call, response };
}

export const unary = <Res = unknown>(client: DynamicClient, method: string, request: unknown, options: CallOptions = {}) =>
  startUnary<Res>(client, method, request, options).response;

/** Opens a bidirectional or server stream; `messages` collects what arrives. */
export function openStream(client: DynamicClient, method: string, requestOrNothing?: unknown, options: CallOptions = {}) {
  const fn = client[method] as (...args: unknown[]) => grpc.ClientDuplexStream<unknown, unknown> & grpc.ClientReadableStream<unknown>;
  const metadata = toMetadata(options.metadata);
  const callOptions = options.deadline === undefined ? {} : { deadline: options.deadline };
  const call = requestOrNothing === undefined ? fn.call(client, metadata, callOptions) : fn.call(client, requestOrNothing, metadata, callOptions);
  const messages: unknown[] = [];
  const waiters: Array<() => void> = [];
  call.on('data', (m: unknown) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const status = new Promise<grpc.StatusObject & { error?: grpc.ServiceError }>((resolve) => {
    let error: grpc.ServiceError | undefined;
    call.on('error', (e: grpc.ServiceError) => (error = e));
    call.on('status', (s: grpc.StatusObject) => resolve({ ...s, ...(error ? { error } : {}) }));
  });
  /** Resolves once `count` messages have arrived (or the stream ended: then fewer). */
  const received = (count: number) =>
    new Promise<unknown[]>((resolve) => {
      const check = () => (messages.length >= count ? resolve(messages.slice(0, count)) : waiters.push(check));
      void status.then(() => resolve(messages.slice()));
      check();
    });
  return { call, messages, received, status };
}

/** The status a call failed with; fails the test if it succeeded. */
export async function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    const res = await promise;
    assert.fail(`expected the call to fail, it answered ${JSON.stringify(res)?.slice(0, 300)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    return err as grpc.ServiceError;
  }
}

/** The catalog code of a failed call (`error-code` trailing metadata), if any. */
export const errorCode = (err: grpc.ServiceError): string | undefined => err.metadata?.get('error-code')[0] as string | undefined;

/** Asserts a call fails with gRPC `code` and, when given, catalog code `catalogCode`. */
export async function expectStatus(promise: Promise<unknown>, code: grpc.status, catalogCode?: string): Promise<grpc.ServiceError> {
  const err = await failure(promise);
  assert.equal(err.code, code, `gRPC status ${grpc.status[err.code]} (${err.details}), expected ${grpc.status[code]}`);
  if (catalogCode !== undefined) assert.equal(errorCode(err), catalogCode, `error-code for: ${err.details}`);
  return err;
}

export interface LogLine {
  readonly level: 'info' | 'error' | 'debug';
  readonly msg: string;
  readonly [key: string]: unknown;
}

export interface GrpcAppOptions {
  /** Run inference on the gated stand-in worker. @default false */
  readonly gated?: boolean;
  /** Load the models before the gRPC server starts. @default true */
  readonly load?: boolean;
}

export interface GrpcApp {
  readonly app: FastifyInstance;
  readonly server: GrpcServer;
  readonly address: string;
  /** The temporary model repository the app serves (one flat model, MODEL). */
  readonly repository: string;
  /** The gRPC server's log lines (its `deps.log`). */
  readonly logs: LogLine[];
  readonly inference: DynamicClient;
  readonly health: DynamicClient;
  /** Another pair of clients on their own channel, with these channel options. */
  clients(channelOptions?: grpc.ChannelOptions): { inference: DynamicClient; health: DynamicClient };
  /** Gated apps only: opens or closes the stand-in worker's gate (resolves once it has). */
  gate(command: GateCommand): Promise<void>;
  /** Gated apps only: what the stand-in worker reported since the last gate command. */
  readonly events: GateEvent[];
}

/** A fresh app on the shared ResNet-20 (or the gated stand-in) and a gRPC server in front of it. */
export async function grpcApp(t: TestContext, env: Record<string, string> = {}, options: GrpcAppOptions = {}): Promise<GrpcApp> {
  const repo = await tempRepository(t, [{ name: MODEL, from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const config = testConfig(repo, env);
  const app = await buildApp(config, { defaultMetrics: false, ...(options.gated ? { workerUrl: GATED_WORKER } : {}) });
  const channel = options.gated ? new BroadcastChannel(GATE_CHANNEL) : undefined;
  const opened: grpc.Client[] = [];
  const started: { server?: GrpcServer } = {};
  t.after(async () => {
    for (const c of opened) c.close();
    // Open the gate first: calls held by it would keep both closes waiting.
    channel?.postMessage('open' satisfies GateCommand);
    await started.server?.close(CLOSE_TIMEOUT_MS);
    await app.close();
    channel?.close();
  });
  await app.ready();
  if (options.load !== false) await app.serving.registry.load();

  const logs: LogLine[] = [];
  const log = (level: LogLine['level']) => (obj: object, msg: string) => logs.push({ ...obj, level, msg });
  const { registry, lifecycle, dataPlane, control } = app.serving;
  const server = await startGrpcServer(
    { config, registry, lifecycle, control, ...dataPlane, version: SERVER_VERSION, log: { info: log('info'), error: log('error'), debug: log('debug') } },
    '127.0.0.1',
    0,
  );
  started.server = server;
  const address = `127.0.0.1:${server.port}`;
  const clients = (channelOptions: grpc.ChannelOptions = {}) => {
    clientConstructors ??= loadClients();
    const inference = new clientConstructors.Inference(address, grpc.credentials.createInsecure(), channelOptions) as DynamicClient;
    const health = new clientConstructors.Health(address, grpc.credentials.createInsecure(), channelOptions) as DynamicClient;
    opened.push(inference, health);
    return { inference, health };
  };

  const events: GateEvent[] = [];
  const waiters: Array<() => void> = [];
  if (channel) {
    channel.onmessage = (e) => {
      events.push((e as { data: GateEvent }).data);
      for (const w of waiters.splice(0)) w();
    };
  }
  const gate = async (command: GateCommand) => {
    if (!channel) throw new Error('gate() needs grpcApp(t, env, { gated: true })');
    events.length = 0;
    const ack = new Promise<void>((resolve) => {
      const want = command === 'open' ? 'opened' : 'closed';
      const check = () => (events.some((e) => e.event === want) ? resolve() : waiters.push(check));
      check();
    });
    channel.postMessage(command);
    await ack;
  };
  return { app, server, address, repository: repo, logs, ...clients(), clients, gate, events };
}

/** Client factory for a server not started here (the spawned process). */
export function connect(address: string, channelOptions: grpc.ChannelOptions = {}): { inference: DynamicClient; health: DynamicClient } {
  clientConstructors ??= loadClients();
  return {
    inference: new clientConstructors.Inference(address, grpc.credentials.createInsecure(), channelOptions) as DynamicClient,
    health: new clientConstructors.Health(address, grpc.credentials.createInsecure(), channelOptions) as DynamicClient,
  };
}

/** FP32 values as little-endian bytes. */
export function fp32Bytes(values: ArrayLike<number>): Buffer {
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, i * 4);
  return out;
}

/** Little-endian FP32 bytes as numbers. */
export function readFp32(bytes: Uint8Array): number[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));
}

/** BYTES elements in binary form: each a 4-byte little-endian length, then its bytes. */
export function bytesElements(elements: readonly Uint8Array[]): Buffer {
  return Buffer.concat(
    elements.flatMap((e) => {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(e.length);
      return [length, Buffer.from(e)];
    }),
  );
}

/** The elements of a binary BYTES tensor, as strings. */
export function readBytesElements(bytes: Uint8Array): string[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  for (let offset = 0; offset < b.length;) {
    const length = b.readUInt32LE(offset);
    out.push(b.subarray(offset + 4, offset + 4 + length).toString());
    offset += 4 + length;
  }
  return out;
}

/** `count` preprocessed items, deterministic per `seed`, back to back. */
export function items(count: number, seed = 0): number[] {
  return Array.from({ length: count * ITEM_VALUES }, (_, i) => (((i + seed * 104729) * 7919) % 256) / 255 - 0.5);
}

/** ModelInferRequest with one FP32 input in `raw_input_contents`. */
export function fp32Request(values: readonly number[], extra: Record<string, unknown> = {}) {
  const count = values.length / ITEM_VALUES;
  return { model_name: MODEL, inputs: [{ name: 'input', datatype: 'FP32', shape: [count, 3, 32, 32] }], raw_input_contents: [fp32Bytes(values)], ...extra };
}

/** ModelInferRequest with one BYTES input (encoded images) in `raw_input_contents`. */
export function bytesRequest(images: readonly Uint8Array[], extra: Record<string, unknown> = {}) {
  return { model_name: MODEL, inputs: [{ name: 'image', datatype: 'BYTES', shape: [images.length] }], raw_input_contents: [bytesElements(images)], ...extra };
}

export interface InferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: Array<{ name: string; datatype: string; shape: number[] }>;
  raw_output_contents: Buffer[];
}

export const argmax = (row: readonly number[]) => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0);
