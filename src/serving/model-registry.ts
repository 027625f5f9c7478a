/**
 * The model repository: one folder per model under `repository`, the folder name being the
 * model name. Request data only ever selects among loaded models (a Map lookup): no path is
 * built from it.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors.js';
import { loadModel, type ModelLoadOptions, type ServedModel } from './model.js';

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
  /** Stops intake everywhere and drains every model's queued and running work. */
  stop(): Promise<void>;
}

/** Folders in the repository that are models (hidden folders are work in progress). */
export async function listModelFolders(repository: string): Promise<string[]> {
  const entries = await readdir(repository, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

export function createModelRegistry(options: ModelRegistryOptions): ModelRegistry {
  const models = new Map<string, ServedModel>();
  let state: RegistryState = 'idle';

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
        let names: string[];
        try {
          names = await listModelFolders(options.repository);
        } catch (err) {
          throw new Error(`MODEL_REPOSITORY ${options.repository} cannot be read: ${(err as Error).message}`, { cause: err });
        }
        if (names.length === 0) throw new Error(`MODEL_REPOSITORY ${options.repository} holds no model folder`);
        if (options.defaultModel !== undefined && !names.includes(options.defaultModel)) {
          throw new Error(`DEFAULT_MODEL is ${JSON.stringify(options.defaultModel)}, but ${options.repository} has no such folder (it has: ${names.join(', ')})`);
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
      throw errors.MODEL_NOT_FOUND('Several models are loaded and DEFAULT_MODEL is not set: use /v1/models/{name}:predict');
    },
    list() {
      return [...models.values()];
    },
    async stop() {
      if (state === 'stopping' || state === 'stopped') return;
      state = 'stopping';
      await Promise.all([...models.values()].map((m) => m.stop()));
      state = 'stopped';
    },
  };
}
