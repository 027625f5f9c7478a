/**
 * The repository extension's request bodies (Triton's `extension_model_repository.md`), parsed
 * into what model control takes, for every edge. Each body is optional; an unknown parameter
 * is refused rather than ignored, so a client never believes an option took effect.
 * https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_model_repository.md
 */
import { errors } from '../errors.js';
import { ModelConfigError, parseModelConfigFile } from '../serving/model-config.js';
import type { ConfigOverride } from '../serving/model-repository.js';

/** What messages about an override's fields name as its file. */
export const CONFIG_OVERRIDE_SOURCE = 'load request parameters.config';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{"ready": bool}` (optional): whether the index lists only READY rows. */
export function parseIndexRequest(body: unknown): { ready: boolean } {
  if (body === undefined || body === null) return { ready: false };
  if (!isRecord(body)) throw errors.INVALID_REQUEST('Expected the index request to be a JSON object, e.g. {"ready": true}');
  for (const key of Object.keys(body)) if (key !== 'ready') throw errors.INVALID_REQUEST(`Unknown field \`${key}\` in the index request (known: ready)`);
  if (body.ready !== undefined && typeof body.ready !== 'boolean') throw errors.INVALID_REQUEST('Expected `ready` to be true or false');
  return { ready: body.ready === true };
}

/**
 * `{"parameters": {"config": "<config.json as a JSON string>"}}` (optional): a config used in
 * place of the model's config.json (every version's), validated as config.json is.
 */
export function parseLoadRequest(body: unknown): { override: ConfigOverride | undefined } {
  const parameters = parametersOf(body, 'load', ['config']);
  const text = parameters.config;
  if (text === undefined) return { override: undefined };
  if (typeof text !== 'string') throw errors.INVALID_REQUEST('Expected `parameters.config` to be a string holding a JSON object (a config.json)');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw errors.INVALID_REQUEST(`${CONFIG_OVERRIDE_SOURCE}: is not valid JSON: ${(err as Error).message}`);
  }
  try {
    return { override: { config: parseModelConfigFile(raw, CONFIG_OVERRIDE_SOURCE), source: CONFIG_OVERRIDE_SOURCE } };
  } catch (err) {
    if (err instanceof ModelConfigError) throw errors.INVALID_REQUEST(err.message);
    throw err;
  }
}

/** `{"parameters": {...}}` (optional) of an unload request; Triton's `unload_dependents` has nothing to act on here (no ensembles) and is accepted. */
export function parseUnloadRequest(body: unknown): void {
  parametersOf(body, 'unload', ['unload_dependents']);
}

function parametersOf(body: unknown, what: string, known: readonly string[]): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (!isRecord(body)) throw errors.INVALID_REQUEST(`Expected the ${what} request to be a JSON object`);
  for (const key of Object.keys(body))
    if (key !== 'parameters') throw errors.INVALID_REQUEST(`Unknown field \`${key}\` in the ${what} request (known: parameters)`);
  if (body.parameters === undefined) return {};
  if (!isRecord(body.parameters)) throw errors.INVALID_REQUEST('Expected `parameters` to be a JSON object');
  for (const key of Object.keys(body.parameters)) {
    if (!known.includes(key)) throw errors.INVALID_REQUEST(`Unknown parameter \`${key}\` in the ${what} request (known: ${known.join(', ')})`);
  }
  return body.parameters;
}
