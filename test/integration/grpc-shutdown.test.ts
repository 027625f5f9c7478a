/**
 * SIGTERM against the real server process with gRPC calls in flight: health turns NOT_SERVING
 * at once, calls are still served during SHUTDOWN_DELAY_MS, then new calls get UNAVAILABLE
 * with error-code SHUTTING_DOWN, every call in flight completes OK, and the process exits 0.
 * Nothing sleeps: the server's log lines, its answers and its exit are the events waited on.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../../bench/lib/server-process.js';
import { CIFAR_DIR, distinctCopies, REPO_ROOT, RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../helpers.js';
import { bytesRequest, connect, expectStatus, fp32Request, items, MODEL, openStream, unary, type DynamicClient, type InferResponse } from './grpc-support.js';

const { status } = grpc;
/** Round trips a poll may take before the test gives up (each waits on the server, none sleeps). */
const MAX_POLLS = 20_000;

interface ServerChild {
  readonly base: string;
  readonly inference: DynamicClient;
  readonly health: DynamicClient;
  readonly exited: Promise<[number | null, string | null]>;
  readonly log: () => string;
  readonly kill: (signal: NodeJS.Signals) => void;
}

/** The real server process on the shared ResNet-20 with gRPC on, ready; killed when the test ends. */
async function spawnServer(t: TestContext, env: Record<string, string>): Promise<ServerChild> {
  const repo = await tempRepository(t, [{ name: MODEL, from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const port = await freePort();
  const grpcPort = await freePort();
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'server.js')], {
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(port),
      GRPC_PORT: String(grpcPort),
      MODEL_REPOSITORY: repo,
      SEED_DEFAULT_MODEL: 'false',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  let log = '';
  const waiters: Array<() => void> = [];
  const append = (d: Buffer) => {
    log += d.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const clients = connect(`127.0.0.1:${grpcPort}`);
  t.after(() => {
    clients.inference.close();
    clients.health.close();
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  // The entry point logs "ready" once every model is loaded, after both servers listen.
  const ready = new Promise<boolean>((resolve) => {
    const check = () => (/"msg":"ready"/.test(log) ? resolve(true) : waiters.push(check));
    void exited.then(() => resolve(false));
    check();
  });
  assert.ok(await ready, `server never became ready:\n${log}`);
  return { base: `http://127.0.0.1:${port}`, ...clients, exited, log: () => log, kill: (signal) => child.kill(signal) };
}

/** Sums a metric's samples for the model (over its other labels) in a Prometheus text body. */
function sample(text: string, name: string, has = ''): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(`model="${MODEL}"`) && l.includes(has))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** Resolves once the server has admitted `count` inference calls (in flight or done), polling /metrics. */
async function admitted(base: string, count: number): Promise<void> {
  let seen = 0;
  for (let i = 0; i < MAX_POLLS && seen < count; i++) {
    const text = await (await fetch(`${base}/metrics`)).text();
    seen = sample(text, 'inference_inflight_requests') + sample(text, 'inference_requests_total', 'outcome="ok"');
  }
  assert.equal(seen, count, 'every call reached the server');
}

/** Resolves once health Check on the overall service answers NOT_SERVING (the handler has run). */
async function notServing(health: DynamicClient): Promise<void> {
  let answer = '';
  for (let i = 0; i < MAX_POLLS && answer !== 'NOT_SERVING'; i++) answer = (await unary<{ status: string }>(health, 'Check', { service: '' })).status;
  assert.equal(answer, 'NOT_SERVING', 'unready once shutdown begins');
}

/** 40 calls of 32 images each: with batches of one on one thread, seconds of queued work. */
async function load(inference: DynamicClient) {
  const image = await readFile(join(CIFAR_DIR, 'dog_0000.jpg'));
  let settled = 0;
  // Distinct bytes: identical images in flight together would be one inference.
  const calls = Array.from({ length: 40 }, (_, i) =>
    unary<InferResponse>(inference, 'ModelInfer', { ...bytesRequest(distinctCopies(image, 32, 32 * i)), id: `load-${i}` }).finally(() => settled++),
  );
  // Failures are asserted at the end; meanwhile they must not be unhandled.
  for (const c of calls) c.catch(() => undefined);
  return { calls, settled: () => settled };
}

const SLOW_QUEUE = { BATCH_MAX_SIZE: '1', INTRA_OP_THREADS: '1', QUEUE_MAX_SIZE: '2048', SHUTDOWN_TIMEOUT_MS: '60000' };

describe('graceful shutdown of the server process, over gRPC', () => {
  it('on SIGTERM turns NOT_SERVING, refuses new calls UNAVAILABLE SHUTTING_DOWN, completes every call in flight, exits 0', async (t) => {
    const server = await spawnServer(t, { ...SLOW_QUEUE, SHUTDOWN_DELAY_MS: '0' });
    const { inference, health } = server;
    assert.deepEqual(await unary(health, 'Check', { service: '' }), { status: 'SERVING' });
    const watch = openStream(health, 'Watch', { service: '' });
    assert.deepEqual(await watch.received(1), [{ status: 'SERVING' }]);

    const { calls, settled } = await load(inference);
    await admitted(server.base, calls.length);
    server.kill('SIGTERM');

    // With no delay, intake stops in the same step that turns readiness false.
    await notServing(health);
    assert.deepEqual(await unary(health, 'Check', { service: 'liveness' }), { status: 'SERVING' });
    const refused = await expectStatus(unary(inference, 'ModelInfer', fp32Request(items(1))), status.UNAVAILABLE, 'SHUTTING_DOWN');
    assert.equal(refused.metadata.get('retry-after')[0], '1');
    assert.ok(settled() < calls.length, 'the refusal came while calls were still in flight');

    const answers = await Promise.allSettled(calls);
    assert.deepEqual(
      answers.map((a) =>
        a.status === 'fulfilled' ? 'OK' : `${grpc.status[(a.reason as grpc.ServiceError).code]}: ${(a.reason as grpc.ServiceError).details}`,
      ),
      new Array(calls.length).fill('OK'),
      'every call in flight at SIGTERM completed',
    );
    for (const a of answers) if (a.status === 'fulfilled') assert.deepEqual(a.value.outputs[0]!.shape, [32, 10]);

    // The Watch saw the change, then ended with the server.
    const watchEnd = await watch.status;
    assert.deepEqual(watch.messages, [{ status: 'SERVING' }, { status: 'NOT_SERVING' }]);
    assert.equal(watchEnd.code, status.OK, watchEnd.details);
    const [code] = await server.exited;
    assert.equal(code, 0, `exit code ${code}:\n${server.log()}`);
    assert.match(server.log(), /shutdown complete/);
    await expectStatus(unary(inference, 'ServerLive', {}), status.UNAVAILABLE);
  });

  it('serves calls during SHUTDOWN_DELAY_MS, then refuses new ones UNAVAILABLE SHUTTING_DOWN while the queue drains, exits 0', async (t) => {
    const server = await spawnServer(t, { ...SLOW_QUEUE, SHUTDOWN_DELAY_MS: '300' });
    const { inference, health } = server;
    const { calls, settled } = await load(inference);
    await admitted(server.base, calls.length);
    server.kill('SIGTERM');
    await notServing(health);

    // Within the delay: readiness is false, but calls are admitted and answered.
    const duringDelay = [unary<InferResponse>(inference, 'ModelInfer', fp32Request(items(1), { id: 'during-delay' }))];
    // Then intake stops: send one small call per round trip to the server until one is refused.
    let refused: grpc.ServiceError | undefined;
    let settledAtRefusal = 0;
    for (let i = 0; i < MAX_POLLS && !refused; i++) {
      const probe = unary<InferResponse>(inference, 'ModelInfer', fp32Request(items(1), { id: `probe-${i}` }));
      probe.then(undefined, (err: grpc.ServiceError) => {
        if (refused === undefined) settledAtRefusal = settled();
        refused ??= err;
      });
      await unary(health, 'Check', { service: 'liveness' });
      duringDelay.push(probe);
    }
    assert.ok(refused, `no call was refused while draining:\n${server.log()}`);
    assert.equal(refused.code, status.UNAVAILABLE, refused.details);
    assert.equal(refused.metadata.get('error-code')[0], 'SHUTTING_DOWN');
    assert.ok(settledAtRefusal < calls.length, 'the refusal came while calls were still in flight');

    const answers = await Promise.allSettled([...calls, ...duringDelay]);
    const outcomes = answers.map((a) => (a.status === 'fulfilled' ? 'OK' : (a.reason as grpc.ServiceError).metadata.get('error-code')[0]));
    assert.deepEqual(
      outcomes.slice(0, calls.length + 1),
      new Array(calls.length + 1).fill('OK'),
      'calls in flight at SIGTERM and the call during the delay completed',
    );
    // Probes sent before intake stopped were served; from the first refusal on, all were refused.
    const probes = outcomes.slice(calls.length + 1);
    const firstRefused = probes.indexOf('SHUTTING_DOWN');
    assert.ok(firstRefused >= 0);
    assert.deepEqual(probes.slice(0, firstRefused), new Array(firstRefused).fill('OK'));
    assert.deepEqual(probes.slice(firstRefused), new Array(probes.length - firstRefused).fill('SHUTTING_DOWN'));

    const [code] = await server.exited;
    assert.equal(code, 0, `exit code ${code}:\n${server.log()}`);
    assert.match(server.log(), /shutdown complete/);
  });
});
