/**
 * The Open Inference Protocol's server metadata, answered alike by `GET /v2` and gRPC's
 * `ServerMetadata`: the server's name, its version and the extensions it implements.
 */
import type { ModelControlMode } from '../config.js';

/** The name both edges answer, as Triton answers `triton`. */
export const SERVER_NAME = 'resnet-serve';

/** What this server implements beyond the required API, whatever its model control mode. */
const V2_EXTENSIONS = ['binary_tensor_data', 'classification', 'statistics'] as const;

export interface ServerMetadata {
  readonly name: string;
  readonly version: string;
  readonly extensions: string[];
}

/** The metadata of a server of `version`: the repository extension only with `explicit` control. */
export function serverMetadata(version: string, mode: ModelControlMode): ServerMetadata {
  return { name: SERVER_NAME, version, extensions: mode === 'explicit' ? [...V2_EXTENSIONS, 'model_repository'] : [...V2_EXTENSIONS] };
}
