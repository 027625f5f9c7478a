/**
 * Entry point: environment → config → app → listen → load models; signals → graceful drain.
 * The only file that reads `process.env`, listens, or exits.
 *
 * Shutdown (SIGTERM/SIGINT), in order:
 * 1. readiness turns false at once (Kubernetes stops sending new traffic);
 * 2. requests keep being served for `SHUTDOWN_DELAY_MS` while endpoints update;
 * 3. the batchers stop intake (503 `SHUTTING_DOWN`) and finish what is queued and running,
 *    for at most `SHUTDOWN_TIMEOUT_MS`;
 * 4. requests whose bodies are still arriving are answered 503 `SHUTTING_DOWN` and their
 *    connections closed (a slow sender would otherwise hold the close until its timeout);
 * 5. the HTTP and gRPC servers close once in-flight answers are sent, and the process exits 0.
 * close-with-grace exits 1 if all that takes longer than the sum of both plus a margin.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import closeWithGrace from 'close-with-grace';
import { buildApp, buildMetricsApp, SERVER_VERSION } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { startGrpcServer, type GrpcServer } from './grpc/server.js';
import { ensureDefaultModel } from './model-tools/default-model.js';
import { availableCpus } from './system/cpu-quota.js';
import { startThreadNice } from './system/thread-nice.js';

let config;
try {
  config = loadConfig(process.env, { availableCpus: availableCpus(), readFile: (path) => readFileSync(path, 'utf8') });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`Configuration error: ${err.message}\n`);
  process.exit(2);
}

const cfg = config;
const app = await buildApp(cfg, {
  ...(cfg.seedDefaultModel
    ? {
        prepareRepository: async (log) => {
          await ensureDefaultModel(cfg.modelRepository, log);
        },
      }
    : {}),
});
const metricsApp = cfg.metricsPort === undefined ? undefined : await buildMetricsApp(cfg, app.serving.metrics);
// Decoding threads below the event loop (thread-nice.ts); process-wide, so here rather than in the app.
const decodeNice = startThreadNice({
  name: /^libvips/,
  increment: cfg.decodeNice,
  onError: (err) => app.log.warn({ err }, "could not lower the priority of the decoding threads; they keep the event loop's"),
});

let grpcServer: GrpcServer | undefined;

const GRACE_MARGIN_MS = 2_000;
closeWithGrace({ delay: cfg.shutdownDelayMs + cfg.shutdownTimeoutMs + GRACE_MARGIN_MS, logger: app.log }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'shutting down after an error');
  app.log.info({ signal, shutdownDelayMs: cfg.shutdownDelayMs }, 'shutting down: readiness is now false');
  app.serving.lifecycle.draining = true;
  if (cfg.shutdownDelayMs > 0) await sleep(cfg.shutdownDelayMs);
  const drained = app.serving.drain();
  const timedOut = await Promise.race([drained.then(() => false), sleep(cfg.shutdownTimeoutMs).then(() => true)]);
  if (timedOut) app.log.warn({ shutdownTimeoutMs: cfg.shutdownTimeoutMs }, 'drain did not finish in time; closing anyway');
  const refused = app.serving.refuseIncompleteBodies();
  if (refused > 0) app.log.info({ refused }, 'answered 503 to requests whose bodies were still arriving');
  // Calls in flight were drained with the data plane; what remains are streams left open.
  await Promise.all([app.close(), grpcServer?.close(GRACE_MARGIN_MS / 2)]);
  await metricsApp?.close();
  decodeNice.stop();
  app.log.info('shutdown complete');
});

try {
  await app.listen({ host: cfg.host, port: cfg.port });
  if (metricsApp) await metricsApp.listen({ host: cfg.host, port: cfg.metricsPort ?? 0 });
  if (cfg.grpcPort !== 0) {
    const { registry, lifecycle, dataPlane, control } = app.serving;
    grpcServer = await startGrpcServer(
      { config: cfg, registry, lifecycle, control, ...dataPlane, version: SERVER_VERSION, log: app.log },
      cfg.host,
      cfg.grpcPort,
    );
    app.log.info({ grpcPort: grpcServer.port }, 'gRPC listening');
  }
  app.log.info(
    {
      intraOpThreads: cfg.intraOpThreads,
      decodeNice: cfg.decodeNice,
      decodeThreads: cfg.decodeThreads,
      inferenceWorkers: cfg.inferenceWorkers,
      batchMaxSize: cfg.batchMaxSize,
      executionProvider: cfg.executionProvider,
    },
    'listening; loading models',
  );
  if (cfg.executionProvider !== 'cpu' && (cfg.cudaMemLimitBytes > 0 || cfg.cudnnConvAlgoSearch !== 'HEURISTIC')) {
    app.log.warn(
      { cudaMemLimitBytes: cfg.cudaMemLimitBytes, cudnnConvAlgoSearch: cfg.cudnnConvAlgoSearch },
      'onnxruntime-node 1.30 reads only the device id of the CUDA provider; CUDA_MEM_LIMIT_BYTES and CUDNN_CONV_ALGO_SEARCH are passed on but ignored by this version',
    );
  }
  await app.serving.registry.load();
  app.log.info({ models: app.serving.registry.list().map((m) => `${m.name}:${m.version}`) }, 'ready');
} catch (err) {
  app.log.fatal({ err: (err as Error).message }, 'startup failed');
  process.stderr.write(`Startup failed: ${(err as Error).message}\n`);
  await app.close().catch(() => undefined);
  await metricsApp?.close().catch(() => undefined);
  await grpcServer?.close(0).catch(() => undefined);
  process.exit(1);
}
