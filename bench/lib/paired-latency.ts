/**
 * Where a lone request's time goes: short blocks of sequential requests to the server (one
 * client, keep-alive, reading each answer's `Server-Timing`) alternate with blocks doing the
 * same work directly in this process (preprocess the same image, then run it at batch 1), so
 * both sides see the same state of a shared machine whose speed drifts within minutes. Each
 * block gives medians; the figures are medians over blocks.
 *
 * The direct side runs like the server does at one client: a preprocessing, then a run, then
 * the next preprocessing. So its inference includes what a run costs after other work has
 * used the caches, unlike back-to-back runs.
 */
import { request, Agent } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { openSession } from '../../src/inference/onnx-binding.js';
import { createImagePreprocessor, type PreprocessSpec } from '../../src/preprocess/index.js';
import { median } from './stats.js';
import type { Upload } from './load.js';

export interface PairedLatencyOptions {
  readonly baseUrl: string;
  readonly path: string;
  readonly uploads: readonly Upload[];
  readonly modelPath: string;
  readonly inputName: string;
  /** Shape of one item, without the batch dimension. */
  readonly itemDims: readonly number[];
  readonly spec: PreprocessSpec;
  readonly intraOpThreads: number;
  /** @default 12 */
  readonly blocks?: number;
  /** Requests (and direct repetitions) per block. @default 20 */
  readonly perBlock?: number;
}

/** Medians over blocks of each block's median, in ms. */
export interface PairedLatency {
  readonly blocks: number;
  readonly perBlock: number;
  /** Client-side latency of a request. */
  readonly clientMs: number;
  /** Direct preprocessing and batch-1 inference of the same images, in this process. */
  readonly directPreprocessMs: number;
  readonly directInferMs: number;
  /** The server's own stages (Server-Timing). */
  readonly serverPreprocessMs: number;
  readonly serverQueueMs: number;
  readonly serverInferMs: number;
  readonly serverPostprocessMs: number;
  readonly serverTotalMs: number;
  /** client − (direct preprocess + direct inference): what serving adds. */
  readonly overheadMs: number;
  /** Server total − its stages: routing, body, batching, worker messages, reply. */
  readonly serverOtherMs: number;
  /** Client − server total: connection, HTTP parsing before the server's clock starts, sending and reading the answer. */
  readonly outsideServerMs: number;
}

function serverTiming(header: string | string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of String(header ?? '').split(',')) {
    const [name, dur] = part.trim().split(';dur=');
    if (name && dur !== undefined) out[name] = Number(dur);
  }
  return out;
}

export async function measurePairedLatency(options: PairedLatencyOptions): Promise<PairedLatency> {
  const { blocks = 12, perBlock = 20, uploads } = options;
  const url = new URL(options.path, options.baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const post = (upload: Upload) =>
    new Promise<{ ms: number; timing: Record<string, number> }>((resolve, reject) => {
      const started = performance.now();
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          agent,
          headers: { 'content-type': upload.contentType, 'content-length': upload.body.length },
        },
        (res) => {
          res.resume();
          res.on('error', reject);
          res.on('end', () => {
            if (res.statusCode !== 200) reject(new Error(`${upload.name}: HTTP ${res.statusCode}`));
            else resolve({ ms: performance.now() - started, timing: serverTiming(res.headers['server-timing']) });
          });
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error(`${upload.name}: no answer within 30 s`)));
      req.on('error', reject);
      req.end(upload.body);
    });

  const session = await openSession(options.modelPath, { intraOpThreads: options.intraOpThreads });
  const preprocessor = createImagePreprocessor(options.spec, { maxPixels: 100_000_000 });
  const into = new Float32Array(options.itemDims.reduce((a, b) => a * b, 1));
  const dims = [1, ...options.itemDims];
  const rows: Array<Record<keyof Omit<PairedLatency, 'blocks' | 'perBlock' | 'overheadMs' | 'serverOtherMs' | 'outsideServerMs'>, number>> = [];
  try {
    for (let i = 0; i < 5; i++) {
      await post(uploads[i % uploads.length]!);
      await session.run({ [options.inputName]: { data: into, dims } });
    }
    let next = 0;
    for (let b = 0; b < blocks; b++) {
      const served: Array<{ ms: number; timing: Record<string, number> }> = [];
      const pre: number[] = [];
      const inf: number[] = [];
      // A pause before each side, so neither starts while the other's threads still spin down.
      await sleep(50);
      for (let i = 0; i < perBlock; i++) served.push(await post(uploads[(next + i) % uploads.length]!));
      await sleep(50);
      for (let i = 0; i < perBlock; i++) {
        const bytes = uploads[(next + i) % uploads.length]!.body;
        let t0 = performance.now();
        await preprocessor.preprocess(bytes, into);
        pre.push(performance.now() - t0);
        t0 = performance.now();
        await session.run({ [options.inputName]: { data: into, dims } });
        inf.push(performance.now() - t0);
      }
      next += perBlock;
      const stage = (name: string) => median(served.map((s) => s.timing[name] ?? Number.NaN));
      rows.push({
        clientMs: median(served.map((s) => s.ms)),
        directPreprocessMs: median(pre),
        directInferMs: median(inf),
        serverPreprocessMs: stage('preprocess'),
        serverQueueMs: stage('queue'),
        serverInferMs: stage('infer'),
        serverPostprocessMs: stage('postprocess'),
        serverTotalMs: stage('total'),
      });
    }
  } finally {
    agent.destroy();
    await session.release();
  }
  const m = (f: (r: (typeof rows)[number]) => number) => median(rows.map(f));
  return {
    blocks,
    perBlock,
    clientMs: m((r) => r.clientMs),
    directPreprocessMs: m((r) => r.directPreprocessMs),
    directInferMs: m((r) => r.directInferMs),
    serverPreprocessMs: m((r) => r.serverPreprocessMs),
    serverQueueMs: m((r) => r.serverQueueMs),
    serverInferMs: m((r) => r.serverInferMs),
    serverPostprocessMs: m((r) => r.serverPostprocessMs),
    serverTotalMs: m((r) => r.serverTotalMs),
    overheadMs: m((r) => r.clientMs - r.directPreprocessMs - r.directInferMs),
    serverOtherMs: m((r) => r.serverTotalMs - r.serverPreprocessMs - r.serverQueueMs - r.serverInferMs - r.serverPostprocessMs),
    outsideServerMs: m((r) => r.clientMs - r.serverTotalMs),
  };
}
