/**
 * Which versions of a model are served: Triton's `ModelVersionPolicy` (model_config.proto), in
 * the JSON form its model configuration takes, as the `version_policy` field of a versioned
 * model's `config.json`:
 *
 * - `{"latest": {"num_versions": N}}`: the N highest-numbered versions (N from 1; left out, 1).
 *   The default policy, with N = 1, when `version_policy` is absent.
 * - `{"specific": {"versions": [1, 3]}}`: exactly these versions. Each is a positive integer,
 *   or its decimal string (proto3's JSON form of an int64, which Triton itself renders).
 * - `{"all": {}}`: every version present.
 *
 * Where this differs from Triton: a `specific` version whose folder is missing fails the load,
 * naming it (Triton logs an error and serves the others). Startup fails on every other mistake
 * in a model folder here, and a policy naming a version that is not there is one.
 */
import { ModelConfigError } from './model-config.js';

export type VersionPolicy =
  | { readonly latest: { readonly num_versions: number } }
  | { readonly specific: { readonly versions: readonly number[] } }
  | { readonly all: Readonly<Record<string, never>> };

/** The policy of a versioned model whose config.json sets none (Triton's default). */
export const DEFAULT_VERSION_POLICY: VersionPolicy = Object.freeze({ latest: Object.freeze({ num_versions: 1 }) });

/** A version folder's name: a positive integer, written without sign or leading zeros. */
const VERSION_NAME = /^[1-9][0-9]*$/;

/** The version a folder name stands for, or `undefined` if the name is not a version. */
export function versionOfFolderName(name: string): number | undefined {
  if (!VERSION_NAME.test(name)) return undefined;
  const version = Number(name);
  return Number.isSafeInteger(version) ? version : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const KINDS = ['latest', 'specific', 'all'] as const;

/** Validates `config.json`'s `version_policy`; `file` is only used in messages. */
export function parseVersionPolicy(raw: unknown, file: string): VersionPolicy {
  const field = 'version_policy';
  if (!isRecord(raw))
    throw new ModelConfigError(
      file,
      field,
      `must be an object such as {"latest": {"num_versions": 1}}, {"specific": {"versions": [1, 2]}} or {"all": {}}, got ${JSON.stringify(raw)}`,
    );
  const keys = Object.keys(raw);
  if (keys.length !== 1 || !(KINDS as readonly string[]).includes(keys[0]!)) {
    throw new ModelConfigError(
      file,
      field,
      `must hold exactly one of ${KINDS.map((k) => JSON.stringify(k)).join(', ')}, got ${keys.length === 0 ? 'none' : keys.map((k) => JSON.stringify(k)).join(', ')}`,
    );
  }
  const kind = keys[0] as (typeof KINDS)[number];
  const body = raw[kind];
  if (!isRecord(body)) throw new ModelConfigError(file, `${field}.${kind}`, `must be an object, got ${JSON.stringify(body)}`);
  const known = kind === 'latest' ? ['num_versions'] : kind === 'specific' ? ['versions'] : [];
  for (const key of Object.keys(body)) {
    if (!known.includes(key))
      throw new ModelConfigError(file, `${field}.${kind}.${key}`, `is not a known field (known: ${known.length === 0 ? 'none' : known.join(', ')})`);
  }
  if (kind === 'all') return { all: {} };
  if (kind === 'latest') {
    const n = body.num_versions ?? 1;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
      throw new ModelConfigError(file, `${field}.latest.num_versions`, `must be an integer from 1 and up, got ${JSON.stringify(n)}`);
    }
    return { latest: { num_versions: n } };
  }
  const list = body.versions;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ModelConfigError(file, `${field}.specific.versions`, `must be a non-empty list of version numbers, got ${JSON.stringify(list)}`);
  }
  const versions: number[] = [];
  for (const item of list) {
    const version =
      typeof item === 'number'
        ? Number.isSafeInteger(item) && item >= 1
          ? item
          : undefined
        : typeof item === 'string'
          ? versionOfFolderName(item)
          : undefined;
    if (version === undefined) throw new ModelConfigError(file, `${field}.specific.versions`, `must hold positive integers, got ${JSON.stringify(item)}`);
    if (versions.includes(version)) throw new ModelConfigError(file, `${field}.specific.versions`, `lists version ${version} twice`);
    versions.push(version);
  }
  return { specific: { versions } };
}

/**
 * The versions `policy` serves among `available` (the model folder's version folders), highest
 * first. Errors: `ModelConfigError` naming `file` when no version is available, or a `specific`
 * version is not.
 */
export function selectVersions(policy: VersionPolicy, available: readonly number[], file: string, modelDir: string): number[] {
  const present = [...available].sort((a, b) => b - a);
  if (present.length === 0) {
    throw new ModelConfigError(
      modelDir,
      undefined,
      'has no version folder: a model folder holds model.onnx, or version folders named 1, 2, … each holding one',
    );
  }
  if ('all' in policy) return present;
  if ('latest' in policy) return present.slice(0, policy.latest.num_versions);
  const missing = policy.specific.versions.filter((v) => !present.includes(v));
  if (missing.length > 0) {
    const which = missing.length === 1 ? `version ${missing[0]}` : `versions ${missing.join(', ')}`;
    throw new ModelConfigError(
      file,
      'version_policy.specific.versions',
      `names ${which}, but ${modelDir} has no such version folder (it has: ${[...present].reverse().join(', ')})`,
    );
  }
  return [...policy.specific.versions].sort((a, b) => b - a);
}
