/**
 * The models served: every model folder of the repository (model-repository.ts says which
 * entries those are), loaded at startup. Request data only ever selects among loaded models
 * (a Map lookup): no path is built from it.
 */
import { join } from 'node:path';
import { errors } from '../errors.js';
import { loadModel, type ModelLoadOptions, type ServedModel } from './model.js';
import { scanRepository, type RepositoryScan, type SkippedEntry } from './model-repository.js';

export interface ModelRegistryOptions {
  readonly repository: string;
  /** Model of the short routes; with a single model it is that one. */
  readonly defaultModel: string | undefined;
  readonly load: ModelLoadOptions;
  /** Called before scanning, e.g. to build the default model into an empty repository. */
  readonly prepare?: () => Promise<void>;
}

export type RegistryState = 'idle' | 'loading' | 'ready' | 'failed' | 'stopping' | 'stopped';

export interface ModelRegistry {
  readonly state: RegistryState;
  /** True once every model is loaded and warmed up, until shutdown begins. */
  readonly ready: boolean;
  /** Loads every model; rejects (naming the file and field) if any fails. */
  load(): Promise<void>;
  /** The loaded model called `name`, or `MODEL_NOT_FOUND`. */
  get(name: string): ServedModel;
  /** The model of the short routes, or `MODEL_NOT_FOUND` when none is set among several. */
  getDefault(): ServedModel;
  list(): readonly ServedModel[];
  /**
   * Stops intake everywhere and drains every model's queued and running work. Idempotent:
   * every call returns the same promise.
   */
  stop(): Promise<void>;
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

export function createModelRegistry(options: ModelRegistryOptions): ModelRegistry {
  const models = new Map<string, ServedModel>();
  let state: RegistryState = 'idle';
  let stopped: Promise<void> | undefined;

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
        for (const { name, reason, hidden } of scan.skipped) {
          const line = `model repository: skipped ${name}: ${reason}`;
          // Hidden entries (staging folders, Kubernetes' `..data`) are expected: info, not warn.
          if (hidden) options.load.log.info({ entry: name, reason }, line);
          else options.load.log.warn({ entry: name, reason }, line);
        }
        const names = scan.models;
        const skippedText = describeSkipped(scan.skipped);
        if (names.length === 0) throw new Error(`MODEL_REPOSITORY ${options.repository} holds no model folder${skippedText}${describeHidden(scan.skipped)}`);
        if (options.defaultModel !== undefined && !names.includes(options.defaultModel)) {
          throw new Error(`DEFAULT_MODEL is ${JSON.stringify(options.defaultModel)}, but ${options.repository} has no such folder (it has: ${names.join(', ')}${skippedText})`);
        }
        // One at a time: loading and warm-up are CPU-bound, and a failure stops the rest.
        for (const name of names) {
          const model = await loadModel(join(options.repository, name), name, options.load);
          // stop() may have run while this model loaded.
          if ((state as RegistryState) === 'stopping' || (state as RegistryState) === 'stopped') {
            await model.stop();
            return;
          }
          models.set(name, model);
          options.load.log.info(
            {
              model: name,
              version: model.version,
              executionProvider: model.executionProvider,
              input: model.input.shape,
              classes: model.output.classes,
              maxBatchSize: model.maxBatchSize,
              workers: model.workers,
              sha256: model.sha256,
              loadSeconds: Number(model.loadSeconds.toFixed(3)),
              trained: model.trained,
            },
            `model ${name} ready on ${model.executionProvider}`,
          );
        }
        state = 'ready';
      } catch (err) {
        state = 'failed';
        throw err;
      }
    },
    get(name) {
      const model = models.get(name);
      if (!model && (state === 'idle' || state === 'loading')) throw errors.MODEL_NOT_READY('Models are still loading');
      if (!model) throw errors.MODEL_NOT_FOUND(`No model named ${JSON.stringify(name.slice(0, 128))} is loaded`);
      return model;
    },
    getDefault() {
      if (options.defaultModel !== undefined) return this.get(options.defaultModel);
      if (models.size === 1) return models.values().next().value as ServedModel;
      if (models.size === 0) throw errors.MODEL_NOT_READY('No model is loaded yet');
      throw errors.MODEL_NOT_FOUND(noDefaultModelMessage([...models.keys()]));
    },
    list() {
      return [...models.values()];
    },
    stop() {
      if (stopped) return stopped;
      state = 'stopping';
      stopped = Promise.all([...models.values()].map((m) => m.stop())).then(() => {
        state = 'stopped';
      });
      return stopped;
    },
  };
}
