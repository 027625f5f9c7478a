/**
 * SIGTERM against the real server process with requests in flight: every in-flight request
 * completes with 200, readiness is 503 from the signal on, requests after intake stops get
 * 503 SHUTTING_DOWN, and the process exits 0 (close-with-grace would exit 1 past its deadline).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { freePort } from '../../bench/lib/server-process.js';
import { CIFAR_DIR, distinctCopies, REPO_ROOT, RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../helpers.js';

interface ServerChild {
  readonly base: string;
  readonly port: number;
  readonly exited: Promise<[number | null, string | null]>;
  readonly log: () => string;
  readonly kill: (signal: NodeJS.Signals) => void;
}

/** The real server process on the shared ResNet-20, ready; killed when the test ends. */
async function spawnServer(t: TestContext, env: Record<string, string>): Promise<ServerChild> {
  const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const port = await freePort();
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'server.js')], {
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(port),
      GRPC_PORT: '0',
      MODEL_REPOSITORY: repo,
      SEED_DEFAULT_MODEL: 'false',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const base = `http://127.0.0.1:${port}`;
  // Wait for readiness by polling the probe, as Kubernetes does (bounded attempts).
  let ready = false;
  for (let i = 0; i < 600 && !ready; i++) {
    ready = await fetch(`${base}/v2/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (!ready) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(ready, `server never became ready:\n${log}`);
  return { base, port, exited, log: () => log, kill: (signal) => child.kill(signal) };
}

describe('graceful shutdown of the server process', () => {
  it('drains in-flight requests on SIGTERM, turns unready, refuses new work, exits 0', async (t) => {
    const server = await spawnServer(t, {
      // Batches of one on one thread make the queue long enough to still be draining when
      // the signal comes, whatever the machine's speed.
      BATCH_MAX_SIZE: '1',
      INTRA_OP_THREADS: '1',
      QUEUE_MAX_SIZE: '2048',
      SHUTDOWN_DELAY_MS: '300',
      SHUTDOWN_TIMEOUT_MS: '60000',
    });
    const { base, exited } = server;

    const image = await readFile(join(CIFAR_DIR, 'dog_0000.jpg'));
    // Distinct bytes: identical images in flight together would be one inference.
    const body = (i: number) => JSON.stringify({ instances: distinctCopies(image, 32, 32 * i).map((copy) => ({ b64: copy.toString('base64') })) });
    const post = (_: unknown, i: number) => fetch(`${base}/v1/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(i) });
    const inflight = Array.from({ length: 40 }, post);
    // Signal once the server has admitted all 40 (its in-flight gauge says so) and has
    // started answering, so work is both done and still queued.
    let admitted = 0;
    for (let i = 0; i < 600 && admitted < 40; i++) {
      const text = await (await fetch(`${base}/metrics`)).text();
      const inProgress = Number(/^inference_inflight_requests\{model="resnet20",version="1"\} (\d+)/m.exec(text)?.[1] ?? 0);
      const done = Number(/^inference_requests_total\{model="resnet20",version="1",outcome="ok",protocol="http"\} (\d+)/m.exec(text)?.[1] ?? 0);
      admitted = inProgress + done;
      if (admitted < 40) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(admitted, 40, 'all requests reached the server');
    await Promise.race(inflight);
    server.kill('SIGTERM');

    // The signal is delivered asynchronously: poll until the handler has run (bounded).
    let readiness = await fetch(`${base}/v2/health/ready`);
    for (let i = 0; i < 100 && readiness.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 10));
      readiness = await fetch(`${base}/v2/health/ready`);
    }
    assert.equal(readiness.status, 503, 'unready once shutdown begins');
    assert.equal(((await readiness.json()) as { code: string }).code, 'SHUTTING_DOWN');

    // After the delay, intake stops while the queue drains: new requests are refused with 503.
    // Probe every 50 ms without waiting for answers (accepted ones wait behind the queue).
    const probes: Array<Promise<Response | undefined>> = [];
    let refused: Response | undefined;
    for (let i = 0; i < 200 && !refused; i++) {
      probes.push(
        post(undefined, 40 + i).then(
          (res) => {
            if (res.status === 503) refused ??= res;
            return res;
          },
          () => undefined,
        ),
      );
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(refused, `no request was refused while draining:\n${server.log()}`);
    const refusal = (await refused.json()) as { code: string };
    assert.equal(refusal.code, 'SHUTTING_DOWN');
    assert.ok(refused.headers.get('retry-after'));

    const statuses = await Promise.all(inflight.map(async (p) => (await p).status));
    assert.deepEqual(statuses, new Array(40).fill(200), 'every request in flight at SIGTERM completed');

    await Promise.all(probes);
    const [code] = await exited;
    assert.equal(code, 0, `exit code ${code}:\n${server.log()}`);
    assert.match(server.log(), /shutdown complete/);
  });

  it('answers 503 SHUTTING_DOWN to a request whose body is still arriving when the drain ends, and exits 0', async (t) => {
    const server = await spawnServer(t, {
      SHUTDOWN_DELAY_MS: '0',
      SHUTDOWN_TIMEOUT_MS: '500',
      HTTP_REQUEST_TIMEOUT_MS: '120000',
      HTTP_HEADERS_TIMEOUT_MS: '60000',
    });
    const image = await readFile(join(CIFAR_DIR, 'dog_0000.jpg'));
    const socket = connect(server.port, '127.0.0.1');
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const closed = once(socket, 'close');
    // The server says 100 Continue once it starts reading the body: from then on the request
    // is the server's, and its client sends half the body and stalls.
    socket.write(`POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\nContent-Length: ${image.length}\r\nExpect: 100-continue\r\n\r\n`);
    for (let i = 0; i < 500 && !received.includes('100 Continue'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(received, /^HTTP\/1.1 100 Continue\r\n/);
    socket.write(image.subarray(0, image.length >> 1));

    server.kill('SIGTERM');
    await closed;
    const answer = received.slice(received.indexOf('\r\n\r\n') + 4);
    assert.match(answer, /^HTTP\/1.1 503 /, received);
    assert.match(answer, /"code":"SHUTTING_DOWN"/);
    assert.match(answer, /\r\nretry-after: 1\r\n/i);
    const [code] = await server.exited;
    assert.equal(code, 0, `exit code ${code}:\n${server.log()}`);
    assert.match(server.log(), /answered 503 to requests whose bodies were still arriving/);
  });
});
