/**
 * Model control while serving (`MODEL_CONTROL_MODE`, Triton's model control modes): loading,
 * reloading and unloading models by the repository API (`explicit`) or by rescanning the
 * repository (`poll`), without refusing a request.
 *
 * Rules:
 * - Loads and unloads run one at a time, in the order asked (a queue): loading is CPU-bound,
 *   and two changes to one model must not interleave. They run off the request path: probes and
 *   traffic never wait for them.
 * - A load reads the model's plan, loads and warms up every selected version that is new or
 *   changed (model.onnx's sha256, its config or labels: `fingerprintOf`) on workers of its own
 *   while the current versions serve, reusing those unchanged, then makes the new set what the
 *   model serves in one step (`registry.swap`).
 * - A version taken out of service is retired only once nothing is admitted on it
 *   (`service.whenIdle`): requests that hold it finish on it, none is refused. Its workers
 *   then end, and its metric series go.
 * - A failed load leaves what was serving untouched; the failure shows in the index (state
 *   UNAVAILABLE, the reason naming the file and field), the log and
 *   `model_load_failures_total`.
 * - `poll`: a rescan loads a new model or version, unloads a removed model, reloads a changed
 *   version; a version whose load failed is not tried again until its files change.
 */
import { join } from 'node:path';
import { errors } from '../errors.js';
import type { InferenceService } from './inference-service.js';
import type { ServedModel } from './model.js';
import { ModelLoadError, type ModelRegistry } from './model-registry.js';
import { fingerprintOf, readModelPlan, readModelVersion, scanRepository, type ConfigOverride, type ModelPlan } from './model-repository.js';
import type { ServingObserver } from './observer.js';

/** Triton's model states, as the repository index reports them. */
export type ModelState = 'READY' | 'LOADING' | 'UNLOADING' | 'UNAVAILABLE';

/** One row of the repository index (Triton's shape: `version`, `state` and `reason` only for a model that was ever loaded). */
export interface IndexEntry {
  readonly name: string;
  readonly version?: string;
  readonly state?: ModelState;
  readonly reason?: string;
}

export interface ModelControlLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ModelControlOptions {
  readonly repository: string;
  readonly registry: ModelRegistry;
  readonly service: Pick<InferenceService, 'whenIdle'>;
  readonly observer: Pick<ServingObserver, 'modelUnloaded' | 'modelLoadFailed'>;
  readonly log: ModelControlLogger;
}

export interface ModelControl {
  /** Every model folder and every version ever loaded, sorted by name then version; `ready`: READY rows only. */
  index(options?: { readonly ready?: boolean }): Promise<IndexEntry[]>;
  /**
   * Loads (or reloads) the model folder `name` and serves it, retiring the versions it no longer
   * serves. MODEL_NOT_FOUND for a name that is no model folder, MODEL_LOAD_FAILED (with the
   * reason) when loading fails.
   */
  load(name: string, override?: ConfigOverride): Promise<void>;
  /** Stops serving `name` and retires its versions once their admitted work is done. MODEL_NOT_FOUND if not served. */
  unload(name: string): Promise<void>;
  /** One rescan (poll mode's step): resolves once it and the loads it asked for are done. */
  rescan(): Promise<void>;
  /** Starts rescanning every `intervalMs` (poll mode) until `stop`. */
  startPolling(intervalMs: number): void;
  /** Stops polling and waits for the load or unload running now. Idempotent. */
  stop(): Promise<void>;
}

interface VersionStatus {
  readonly state: ModelState;
  readonly reason: string;
}

const readyReason = '';

export function createModelControl(options: ModelControlOptions): ModelControl {
  const { registry, service, observer, log } = options;
  /** What each model's versions are known to be, beyond what is served (failed, unloaded, loading). */
  const status = new Map<string, Map<string, VersionStatus>>();
  /** Poll mode: the folder snapshot (`folderSnapshot`) of each model whose load failed, so a rescan retries only once its files change. */
  const failedSnapshots = new Map<string, string>();
  /** Models whose load is running now. */
  const loading = new Set<string>();
  let tail: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let stopped: Promise<void> | undefined;

  /** Runs `task` after every task queued before it. */
  const enqueue = <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task);
    tail = run.catch(() => undefined);
    return run;
  };

  const setStatus = (name: string, version: string, state: ModelState, reason = readyReason) => {
    const versions = status.get(name) ?? new Map<string, VersionStatus>();
    versions.set(version, { state, reason });
    status.set(name, versions);
  };

  const closing = () => registry.state === 'stopping' || registry.state === 'stopped';
  const servedOf = (name: string): readonly ServedModel[] => (registry.names().includes(name) ? registry.versions(name) : []);

  /** Retires `out` once nothing is admitted on each; drops a version's series unless a new load of it serves. */
  const retire = async (name: string, out: readonly ServedModel[]) => {
    for (const v of out) setStatus(name, v.version, 'UNLOADING');
    await Promise.all(
      out.map(async (v) => {
        await service.whenIdle(v);
        await registry.retire(v);
        const servedAgain = servedOf(name).some((m) => m.version === v.version);
        if (!servedAgain) {
          observer.modelUnloaded(v);
          setStatus(name, v.version, 'UNAVAILABLE', 'unloaded');
        }
        log.info({ model: name, version: v.version }, `model ${name} version ${v.version} retired`);
      }),
    );
  };

  const modelFolders = async () => (await scanRepository(options.repository)).models;

  /**
   * Loads `name`, serves what loaded and retires what it replaced. A failure is recorded (index,
   * log, metric) and thrown as a ModelLoadError; what was serving then still serves.
   */
  const loadAndServe = async (name: string, override?: ConfigOverride) => {
    if (closing()) throw errors.SHUTTING_DOWN();
    const current = servedOf(name);
    let loaded: ServedModel[];
    loading.add(name);
    try {
      loaded = await registry.loadVersions(name, { keep: current, ...(override ? { override } : {}) });
    } catch (err) {
      const failure = err instanceof ModelLoadError ? err : new ModelLoadError(name, undefined, err);
      observer.modelLoadFailed(name, failure.version);
      const where = failure.version === undefined ? `model ${name}` : `model ${name} version ${failure.version}`;
      log.error({ model: name, version: failure.version, err: failure.cause }, `${where} failed to load; what was serving still serves: ${failure.message}`);
      // A served version that failed to reload keeps serving (READY); others show the failure.
      if (failure.version !== undefined && !current.some((m) => m.version === failure.version))
        setStatus(name, failure.version, 'UNAVAILABLE', failure.message);
      else if (failure.version === undefined && current.length === 0) setStatus(name, '', 'UNAVAILABLE', failure.message);
      throw failure;
    } finally {
      loading.delete(name);
    }
    if (closing()) {
      await Promise.all(loaded.filter((m) => !current.includes(m)).map((m) => m.stop()));
      throw errors.SHUTTING_DOWN();
    }
    const out = registry.swap(name, loaded);
    status.get(name)?.delete('');
    failedSnapshots.delete(name);
    for (const v of loaded) setStatus(name, v.version, 'READY');
    log.info(
      { model: name, versions: loaded.map((m) => m.version), retiring: out.map((m) => m.version) },
      `model ${name} serves version(s) ${loaded.map((m) => m.version).join(', ')}`,
    );
    await retire(name, out);
  };

  const doLoad = (name: string, override?: ConfigOverride) =>
    loadAndServe(name, override).catch((err: unknown) => {
      if (err instanceof ModelLoadError) {
        throw errors.MODEL_LOAD_FAILED(
          `${err.version === undefined ? `Model ${name}` : `Model ${name} version ${err.version}`} failed to load: ${err.message}`,
        );
      }
      throw err;
    });

  const doUnload = async (name: string) => {
    if (!registry.names().includes(name)) throw errors.MODEL_NOT_FOUND(`No model named ${JSON.stringify(name.slice(0, 128))} is loaded`);
    const out = registry.swap(name, []);
    log.info({ model: name, retiring: out.map((m) => m.version) }, `model ${name} unloaded`);
    await retire(name, out);
  };

  /**
   * What a load of model folder `name` would serve, as one comparable string: each version the
   * policy selects, highest first, with its fingerprint; or why the folder cannot be read.
   */
  const folderSnapshot = async (name: string): Promise<string> => {
    let plan: ModelPlan;
    try {
      plan = await readModelPlan(join(options.repository, name));
    } catch (err) {
      return `unreadable: ${(err as Error).message}`;
    }
    const parts: string[] = [];
    for (const version of plan.versions) {
      const folder = await readModelVersion(plan, version).catch((err: Error) => err);
      parts.push(`${version}=${folder instanceof Error ? `unreadable: ${folder.message}` : fingerprintOf(folder)}`);
    }
    return parts.join(',');
  };

  /** The same string for what `name` serves now. */
  const servedSnapshot = (name: string) =>
    servedOf(name)
      .map((m) => `${m.version}=${m.fingerprint}`)
      .join(',');

  const doRescan = async () => {
    let folders: readonly string[];
    try {
      folders = await modelFolders();
    } catch (err) {
      log.error({ err }, `model repository ${options.repository} cannot be read; nothing changed`);
      return;
    }
    for (const name of registry.names()) {
      if (!folders.includes(name)) await doUnload(name).catch((err: unknown) => log.error({ err, model: name }, `unloading ${name} failed`));
    }
    for (const name of failedSnapshots.keys()) if (!folders.includes(name)) failedSnapshots.delete(name);
    for (const name of folders) {
      const snapshot = await folderSnapshot(name);
      if (snapshot === servedSnapshot(name) || snapshot === failedSnapshots.get(name)) continue;
      try {
        await loadAndServe(name);
      } catch (err) {
        // Logged, counted and indexed by loadAndServe; tried again once the files change.
        failedSnapshots.set(name, snapshot);
        if (!(err instanceof ModelLoadError)) log.error({ err, model: name }, `loading ${name} failed`);
      }
    }
  };

  return {
    async index({ ready = false } = {}) {
      const folders = await modelFolders().catch(() => [] as string[]);
      const names = [...new Set([...folders, ...registry.names(), ...status.keys()])].sort();
      const rows: IndexEntry[] = [];
      for (const name of names) {
        const served = new Set(servedOf(name).map((m) => m.version));
        const known = status.get(name) ?? new Map<string, VersionStatus>();
        const versions = [...new Set([...served, ...known.keys()])].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : Number(a) - Number(b) || (a < b ? -1 : 1)));
        if (served.size === 0 && loading.has(name)) {
          // Which versions a load brings is known once it is done: the model is LOADING.
          if (!ready) rows.push({ name, state: 'LOADING', reason: '' });
          continue;
        }
        if (versions.length === 0) {
          if (!ready) rows.push({ name });
          continue;
        }
        for (const version of versions) {
          const s = known.get(version) ?? { state: 'READY' as const, reason: readyReason };
          const state = served.has(version) && s.state !== 'UNLOADING' ? 'READY' : s.state;
          if (ready && state !== 'READY') continue;
          rows.push(version === '' ? { name, state, reason: s.reason } : { name, version, state, reason: state === 'READY' ? '' : s.reason });
        }
      }
      return rows;
    },
    async load(name, override) {
      if (stopped) throw errors.SHUTTING_DOWN();
      const folders = await modelFolders();
      // The name selects among the folders scanned; it never builds a path itself.
      const folder = folders.find((f) => f === name);
      if (folder === undefined) throw errors.MODEL_NOT_FOUND(`The model repository has no model folder named ${JSON.stringify(name.slice(0, 128))}`);
      return enqueue(() => doLoad(folder, override));
    },
    unload(name) {
      if (stopped) return Promise.reject(errors.SHUTTING_DOWN());
      return enqueue(() => doUnload(name));
    },
    rescan() {
      return enqueue(doRescan);
    },
    startPolling(intervalMs) {
      if (timer || stopped) return;
      let scanning = false;
      timer = setInterval(() => {
        if (scanning || !registry.ready) return;
        scanning = true;
        void this.rescan().finally(() => (scanning = false));
      }, intervalMs);
      timer.unref();
    },
    stop() {
      if (stopped) return stopped;
      if (timer) clearInterval(timer);
      timer = undefined;
      stopped = tail.then(() => undefined);
      return stopped;
    },
  };
}
