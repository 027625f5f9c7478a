/**
 * What the server really offers, taken from the server itself rather than restated: the HTTP
 * paths documented in openapi.yaml (which the HTTP tests hold to the routes), the environment
 * variables it reads (ENV_VARS), how it parses them (loadConfig), and the metrics it exports.
 */
import { existsSync } from 'node:fs';
import { ENV_VARS, loadConfig, type Config } from '../../../../src/config.js';
import { createMetrics } from '../../../../src/metrics.js';
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
 * Margin that close-with-grace adds in src/server.ts past SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS
 * before it gives up and exits 1 (GRACE_MARGIN_MS there).
 */
export const SERVER_GRACE_MARGIN_MS = 2_000;
