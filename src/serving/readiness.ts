/**
 * The readiness rule, written once for every edge that reports it (HTTP's probes and model-ready
 * routes, gRPC's ServerReady, ModelReady and health service): ready once every model is loaded
 * and warmed up, and not ready again from the moment shutdown begins (so Kubernetes stops
 * sending traffic while admitted work drains). "Every model" is the startup set (every model
 * folder, or MODEL_LOAD's in explicit mode): a model loaded later by model control that fails
 * leaves the server ready, since nothing that served stopped (docs/models.md, Readiness).
 */
import { errors, type ServingError } from '../errors.js';
import type { ModelRegistry } from './model-registry.js';

/** Shared, mutable lifecycle flags; the entry point sets `draining` on SIGTERM. */
export interface Lifecycle {
  draining: boolean;
}

export function isServerReady(registry: Pick<ModelRegistry, 'ready'>, lifecycle: Lifecycle): boolean {
  return registry.ready && !lifecycle.draining;
}

/** Why the server is not ready, as the catalog error a probe answers with. */
export function notReadyError(registry: Pick<ModelRegistry, 'state'>, lifecycle: Lifecycle): ServingError {
  return lifecycle.draining ? errors.SHUTTING_DOWN() : errors.NOT_READY(`Not ready: models are ${registry.state}`);
}
