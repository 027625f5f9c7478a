/**
 * The models served: the model folders of the repository (model-repository.ts says which
 * entries those are and which versions each serves), every one or those `initialModels` names
 * loaded at startup, then changed by model control (model-control.ts) through
 * `loadVersions` and `swap`. Request data only
 * ever selects among loaded versions (Map lookups): no path is built from it.
 *
 * The unit of loading is one model version (a ServedModel: its own workers, batcher and
 * queue). What a model serves is a `ServedVersions`: an immutable set of loaded versions,
 * replaced whole by `swap` and never changed in place. A lookup reads the current set once and
 * hands back one version; a request keeps that version until it is answered, whatever swaps
 * happen meanwhile, so the set can change between two requests but never under one.
 *
 * Ownership: the registry owns every version it loaded until it stops it. `swap` hands back
 * the versions it took out of service; they stay the registry's (its `stop` still stops them)
 * until `retire` has drained and stopped each.
 */
import { join } from 'node:path';
import { errors } from '../errors.js';
import { loadModel, type ModelLoadOptions, type ServedModel } from './model.js';
import { ModelConfigError } from './model-config.js';
import {
  fingerprintOf,
  readModelPlan,
  readModelVersion,
  scanRepository,
  type ConfigOverride,
  type ModelPlan,
  type RepositoryScan,
  type SkippedEntry,
} from './model-repository.js';

/** A load that failed: the model, the version at fault (none when the model's own files are), and why (`cause`). */
export class ModelLoadError extends Error {
  readonly model: string;
  readonly version: string | undefined;
  constructor(model: string, version: string | undefined, cause: unknown) {
    super((cause as Error).message, { cause });
    this.name = 'ModelLoadError';
    this.model = model;
    this.version = version;
  }
}

export interface ModelRegistryOptions {
  readonly repository: string;
  /** Model of the short routes; with a single model it is that one. */
  readonly defaultModel: string | undefined;
  readonly load: ModelLoadOptions;
  /**
   * The models `load` loads: `'*'`, every model folder (an empty repository is then an error);
   * or these names (each must be a model folder; none is fine: models come later, by the
   * repository API). @default '*'
   */
  readonly initialModels?: readonly string[] | '*';
  /** Called before scanning, e.g. to build the default model into an empty repository. */
  readonly prepare?: () => Promise<void>;
}

export type RegistryState = 'idle' | 'loading' | 'ready' | 'failed' | 'stopping' | 'stopped';

/** The versions of one model served at one moment. Frozen: a change is a new set (`swap`). */
export interface ServedVersions {
  readonly name: string;
  /** Highest first; never empty. */
  readonly versions: readonly ServedModel[];
  /** What unversioned routes use: `versions[0]`. */
  readonly highest: ServedModel;
  readonly byVersion: ReadonlyMap<string, ServedModel>;
}

export interface ModelRegistry {
  readonly state: RegistryState;
  /** True once every model is loaded and warmed up, until shutdown begins. */
  readonly ready: boolean;
  /** Loads every version every model's policy selects; rejects (naming the file and field) if any fails. */
  load(): Promise<void>;
  /**
   * Loads and warms up the versions the policy of model folder `name` selects (`name` must be
   * one of `scanRepository`'s models), without serving them: `swap` does that. A version of
   * `keep` with the same version and fingerprint is reused rather than loaded again. All or
   * none: on a failure the versions it loaded are stopped and a `ModelLoadError` says which
   * version (if one) failed.
   */
  loadVersions(name: string, options?: { readonly override?: ConfigOverride; readonly keep?: readonly ServedModel[] }): Promise<ServedModel[]>;
  /**
   * The served `version` of the model called `name`, or its highest served version when
   * `version` is left out. `MODEL_NOT_FOUND` for a model or version not served,
   * `MODEL_NOT_READY` while loading.
   */
  get(name: string, version?: string): ServedModel;
  /** The highest served version of the model of the short routes, or `MODEL_NOT_FOUND` when none is set among several. */
  getDefault(): ServedModel;
  /** The served versions of `name`, highest first; errors as `get`. */
  versions(name: string): readonly ServedModel[];
  /** The names of the models served, sorted. */
  names(): readonly string[];
  /** Every served version of every model: by name, then highest version first. */
  list(): readonly ServedModel[];
  /**
   * Makes `versions` (loaded versions of the model `name`, any order; none: the model is no
   * longer served) what `name` serves, in one step: lookups after it see the new set, requests
   * that already hold a version keep it. Returns the versions taken out of service, which the
   * caller drains and stops with `retire`.
   */
  swap(name: string, versions: readonly ServedModel[]): readonly ServedModel[];
  /**
   * Stops a version `swap` took out of service, draining its queued and running work. Requests
   * still holding it but not yet queued (decoding) are then refused SHUTTING_DOWN: a caller
   * wanting none refused waits first for the data plane to have none admitted on it.
   * Throws for a version that is served.
   */
  retire(model: ServedModel): Promise<void>;
  /**
   * Stops intake everywhere and drains every version's queued and running work, served or
   * retiring. Idempotent: every call returns the same promise.
   */
  stop(): Promise<void>;
}

/**
 * Orders versions, highest first: as integers when both are (version folders always are),
 * else as strings (a flat model's config `version` may be any name).
 */
export function compareVersionsDescending(a: string, b: string): number {
  const integer = /^[0-9]+$/;
  if (integer.test(a) && integer.test(b)) return Number(b) - Number(a);
  return a < b ? 1 : a > b ? -1 : 0;
}

/** The frozen set of `models` for `name`; throws on an empty set, a foreign model or a repeated version. */
export function servedVersions(name: string, models: readonly ServedModel[]): ServedVersions {
  if (models.length === 0) throw new RangeError(`Expected at least one version of model \`${name}\`, got none`);
  const byVersion = new Map<string, ServedModel>();
  for (const m of models) {
    if (m.name !== name) throw new RangeError(`Expected versions of model \`${name}\`, got one of \`${m.name}\``);
    if (byVersion.has(m.version)) throw new RangeError(`Expected each version of model \`${name}\` once, got version \`${m.version}\` twice`);
    byVersion.set(m.version, m);
  }
  const versions = Object.freeze([...models].sort((a, b) => compareVersionsDescending(a.version, b.version)));
  return Object.freeze({ name, versions, highest: versions[0]!, byVersion });
}

/** The visible skipped entries, for messages that say why a model is not there. */
function describeSkipped(skipped: readonly SkippedEntry[]): string {
  const visible = skipped.filter((s) => !s.hidden);
  return visible.length === 0 ? '' : `; skipped: ${visible.map((s) => `${s.name} (${s.reason})`).join(', ')}`;
}

/** The hidden entries, for the message of a repository with no model (say, only an unfinished fetch). */
function describeHidden(skipped: readonly SkippedEntry[]): string {
  const hidden = skipped.filter((s) => s.hidden);
  return hidden.length === 0 ? '' : `; ignored, being dot-prefixed (work in progress, never served): ${hidden.map((s) => s.name).join(', ')}`;
}

/** Model names listed in a message before the rest are only counted. */
const MAX_NAMES_LISTED = 8;

/** Why the short routes have no model among several, and the two ways to give them one. */
export function noDefaultModelMessage(names: readonly string[]): string {
  const listed = names.slice(0, MAX_NAMES_LISTED).join(', ') + (names.length > MAX_NAMES_LISTED ? ` and ${names.length - MAX_NAMES_LISTED} more` : '');
  const example = names[0] ?? '<name>';
  return (
    `Several models are loaded (${listed}) and DEFAULT_MODEL is not set, so this route cannot tell which to use: ` +
    `set DEFAULT_MODEL=<one of them> and restart (e.g. DEFAULT_MODEL=${example}), ` +
    `or send the request to /v1/models/<name>:predict (e.g. /v1/models/${example}:predict)`
  );
}

/** The versions a client may name in a message: `2, 1`. */
const versionList = (set: ServedVersions) => set.versions.map((v) => v.version).join(', ');

export function createModelRegistry(options: ModelRegistryOptions): ModelRegistry {
  /** What each model serves now; replaced, never mutated (see `swap`). */
  const served = new Map<string, ServedVersions>();
  /** Versions taken out of service and not yet stopped: still the registry's to stop. */
  const retiring = new Set<ServedModel>();
  let state: RegistryState = 'idle';
  let stopped: Promise<void> | undefined;
  const { log } = options.load;

  const setOf = (name: string): ServedVersions => {
    const set = served.get(name);
    if (set) return set;
    if (state === 'idle' || state === 'loading') throw errors.MODEL_NOT_READY('Models are still loading');
    throw errors.MODEL_NOT_FOUND(`No model named ${JSON.stringify(name.slice(0, 128))} is loaded`);
  };

  const swap = (name: string, versions: readonly ServedModel[]): readonly ServedModel[] => {
    const previous = served.get(name);
    if (versions.length === 0) served.delete(name);
    else served.set(name, servedVersions(name, versions));
    const out = previous?.versions.filter((v) => !versions.includes(v)) ?? [];
    for (const v of out) retiring.add(v);
    // A version swapped back in before it was retired is served again, not retiring.
    for (const v of versions) retiring.delete(v);
    return out;
  };

  const logSkipped = (skipped: readonly SkippedEntry[], where: string) => {
    for (const { name, reason, hidden } of skipped) {
      const line = `${where}: skipped ${name}: ${reason}`;
      // Hidden entries (staging folders, Kubernetes' `..data`) are expected: info, not warn.
      if (hidden) log.info({ entry: name, reason }, line);
      else log.warn({ entry: name, reason }, line);
    }
  };

  const planOf = async (name: string, override?: ConfigOverride): Promise<ModelPlan> => {
    const dir = join(options.repository, name);
    try {
      return await readModelPlan(dir, override);
    } catch (err) {
      if (err instanceof ModelConfigError) throw err;
      throw new ModelConfigError(dir, undefined, `cannot be read: ${(err as Error).message}`);
    }
  };

  /** Loads every version `name`'s policy selects, highest first; all or none (a failure stops those loaded here). */
  const loadVersions = async (
    name: string,
    { override, keep = [] }: { override?: ConfigOverride; keep?: readonly ServedModel[] } = {},
  ): Promise<ServedModel[]> => {
    const plan = await planOf(name, override).catch((err: unknown) => {
      throw new ModelLoadError(name, undefined, err);
    });
    logSkipped(plan.skipped, `model ${name}`);
    const result: ServedModel[] = [];
    const loaded: ServedModel[] = [];
    let current: string | undefined;
    try {
      for (const version of plan.versions) {
        current = version;
        const candidates = keep.filter((m) => m.version === version);
        if (candidates.length > 0) {
          const fingerprint = fingerprintOf(await readModelVersion(plan, version));
          const same = candidates.find((m) => m.fingerprint === fingerprint);
          if (same) {
            result.push(same);
            continue;
          }
        }
        const model = await loadModel({ name, plan, version }, options.load);
        loaded.push(model);
        result.push(model);
        log.info(
          {
            model: name,
            version: model.version,
            layout: plan.layout,
            executionProvider: model.executionProvider,
            input: model.input.shape,
            classes: model.output.classes,
            maxBatchSize: model.maxBatchSize,
            workers: model.workers,
            sha256: model.sha256,
            loadSeconds: Number(model.loadSeconds.toFixed(3)),
            trained: model.trained,
          },
          `model ${name} version ${model.version} ready on ${model.executionProvider}`,
        );
      }
    } catch (err) {
      await Promise.all(loaded.map((m) => m.stop()));
      throw new ModelLoadError(name, current, err);
    }
    return result;
  };

  return {
    get state() {
      return state;
    },
    get ready() {
      return state === 'ready';
    },
    async load() {
      state = 'loading';
      try {
        await options.prepare?.();
        let scan: RepositoryScan;
        try {
          scan = await scanRepository(options.repository);
        } catch (err) {
          throw new Error(`MODEL_REPOSITORY ${options.repository} cannot be read: ${(err as Error).message}`, { cause: err });
        }
        logSkipped(scan.skipped, 'model repository');
        const initial = options.initialModels ?? '*';
        const skippedText = describeSkipped(scan.skipped);
        const missing = initial === '*' ? [] : initial.filter((n) => !scan.models.includes(n));
        if (missing.length > 0)
          throw new Error(
            `MODEL_LOAD names ${missing.join(', ')}, but ${options.repository} has no such model folder (it has: ${scan.models.join(', ')}${skippedText})`,
          );
        const names = initial === '*' ? scan.models : scan.models.filter((n) => initial.includes(n));
        if (initial === '*' && names.length === 0)
          throw new Error(`MODEL_REPOSITORY ${options.repository} holds no model folder${skippedText}${describeHidden(scan.skipped)}`);
        if (options.defaultModel !== undefined && !scan.models.includes(options.defaultModel)) {
          throw new Error(
            `DEFAULT_MODEL is ${JSON.stringify(options.defaultModel)}, but ${options.repository} has no such folder (it has: ${names.join(', ')}${skippedText})`,
          );
        }
        // One at a time: loading and warm-up are CPU-bound, and a failure stops the rest.
        for (const name of names) {
          const versions = await loadVersions(name).catch((err: unknown) => {
            // At startup the cause is the message: it names the file and field.
            throw err instanceof ModelLoadError ? err.cause : err;
          });
          // stop() may have run while this model loaded.
          if ((state as RegistryState) === 'stopping' || (state as RegistryState) === 'stopped') {
            await Promise.all(versions.map((m) => m.stop()));
            return;
          }
          swap(name, versions);
        }
        state = 'ready';
      } catch (err) {
        state = 'failed';
        throw err;
      }
    },
    get(name, version) {
      const set = setOf(name);
      if (version === undefined) return set.highest;
      const model = set.byVersion.get(version);
      if (!model) {
        throw errors.MODEL_NOT_FOUND(
          `Model ${set.name} does not serve version ${JSON.stringify(version.slice(0, 64))}; it serves version${set.versions.length > 1 ? 's' : ''} ${versionList(set)}`,
        );
      }
      return model;
    },
    getDefault() {
      if (options.defaultModel !== undefined) return this.get(options.defaultModel);
      if (served.size === 1) return (served.values().next().value as ServedVersions).highest;
      if (served.size === 0) throw errors.MODEL_NOT_READY('No model is loaded yet');
      throw errors.MODEL_NOT_FOUND(noDefaultModelMessage([...served.keys()].sort()));
    },
    versions(name) {
      return setOf(name).versions;
    },
    names() {
      return [...served.keys()].sort();
    },
    list() {
      return this.names().flatMap((name) => served.get(name)!.versions);
    },
    loadVersions,
    swap,
    async retire(model) {
      if (served.get(model.name)?.versions.includes(model)) {
        throw new RangeError(`Expected a version taken out of service, got version \`${model.version}\` of \`${model.name}\`, which is served`);
      }
      await model.stop();
      retiring.delete(model);
    },
    stop() {
      if (stopped) return stopped;
      state = 'stopping';
      const all = [...served.values()].flatMap((set) => set.versions).concat([...retiring]);
      stopped = Promise.all(all.map((m) => m.stop())).then(() => {
        state = 'stopped';
      });
      return stopped;
    },
  };
}
