/** What the HTTP routes are given: the parsed config and the transport-free core. */
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import type { InferenceService } from '../serving/inference-service.js';
import type { ModelRegistry } from '../serving/model-registry.js';
import type { Lifecycle } from '../serving/readiness.js';

export type { Lifecycle };

export interface RouteContext {
  readonly config: Config;
  readonly registry: ModelRegistry;
  readonly service: InferenceService;
  readonly metrics: Metrics;
  readonly lifecycle: Lifecycle;
  readonly version: string;
}
