/**
 * What the server really offers, taken from the server itself rather than restated: the HTTP
 * paths documented in openapi.yaml (which the HTTP tests hold to the routes), the environment
 * variables it reads (ENV_VARS), how it parses them (loadConfig), and the metrics it exports.
 */
import { existsSync } from 'node:fs';
import { ENV_VARS, loadConfig, type Config } from '../../../../src/config.js';
import { createMetrics } from '../../../../src/metrics.js';
import type { Probe } from './k8s.js';
import { parseYamlStream, readRepoText, repoPath } from './repo.js';

/** `GET` paths documented in openapi.yaml; throws a clear error when the file is missing. */
export function documentedGetPaths(): Set<string> {
  if (!existsSync(repoPath('openapi.yaml'))) throw new Error('openapi.yaml is missing at the repository root: cannot check probe paths against the API');
  const [doc] = parseYamlStream(readRepoText('openapi.yaml'), 'openapi.yaml') as { paths?: Record<string, Record<string, unknown>> }[];
  const paths = Object.entries(doc?.paths ?? {}).filter(([, operations]) => operations.get !== undefined);
  return new Set(paths.map(([path]) => path));
}

export const serverEnvVars: ReadonlySet<string> = new Set<string>(ENV_VARS);

/** The server's configuration for an environment; throws ConfigError as the server would. */
export function serverConfig(env: ReadonlyMap<string, string>): Config {
  return loadConfig(Object.fromEntries(env), { availableCpus: 2, readFile: () => '' });
}

/** Names of the metrics the server exports (without prom-client's process metrics). */
export function exportedMetricNames(): Set<string> {
  const metrics = createMetrics({ maxBatchSize: 8, defaultMetrics: false });
  return new Set(metrics.registry.getMetricsAsArray().map((m) => m.name));
}

/**
 * The grpc.health.v1.Health service names the server answers, and what each means: "" (what a
 * probe without `service` sends) with the readiness state, SERVING once every model is loaded
 * and warm and NOT_SERVING from SIGTERM on, like GET /v2/health/ready; "liveness" with SERVING
 * whenever the process is up, the drain included, like GET /v2/health/live. Restated here until
 * the gRPC server (src/grpc) exports them.
 */
export const GRPC_HEALTH_SERVICE = { readiness: '', liveness: 'liveness' } as const;

/** The HTTP paths that answer the same two questions (documented in openapi.yaml). */
export const HTTP_HEALTH_PATH = { readiness: '/v2/health/ready', liveness: '/v2/health/live' } as const;

/**
 * Which of the server's health states a probe asks for: `readiness`, `liveness`, or a
 * description of what else it does (a path or a gRPC service the server does not answer with
 * either, or no handler the server offers).
 */
export function probeAsks(probe: Probe | undefined): 'readiness' | 'liveness' | string {
  if (probe?.httpGet !== undefined && probe.grpc !== undefined) return 'both an httpGet and a grpc handler';
  if (probe?.httpGet !== undefined) {
    const path = probe.httpGet.path ?? '/';
    if (path === HTTP_HEALTH_PATH.readiness) return 'readiness';
    if (path === HTTP_HEALTH_PATH.liveness) return 'liveness';
    return `GET ${path}`;
  }
  if (probe?.grpc !== undefined) {
    const service = probe.grpc.service ?? '';
    if (service === GRPC_HEALTH_SERVICE.readiness) return 'readiness';
    if (service === GRPC_HEALTH_SERVICE.liveness) return 'liveness';
    return `gRPC health service "${service}"`;
  }
  return probe === undefined ? 'no probe' : 'neither an httpGet nor a grpc handler';
}

/**
 * Margin that close-with-grace adds in src/server.ts past SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS
 * before it gives up and exits 1 (GRACE_MARGIN_MS there).
 */
export const SERVER_GRACE_MARGIN_MS = 2_000;
