/** Command-line values of the benchmarks, checked with messages naming the flag. */

/** `value` as a number above 0 (or from 0 with `zero`), an integer with `integer`. */
export function positive(name: string, value: string, { integer = false, zero = false } = {}): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || (zero ? n < 0 : n <= 0)) {
    throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} ${zero ? 'from 0' : 'above 0'}, got "${value}"`);
  }
  return n;
}

/** Environment settings a benchmark reports beside the server's own (ENV_VARS): Node's and glibc malloc's. */
export const EXTRA_ENV = ['UV_THREADPOOL_SIZE', 'NODE_OPTIONS', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_ARENA_MAX'] as const;

export interface CommandLineOptions {
  /** Every variable the server reads (src/config.ts ENV_VARS). */
  readonly serverEnv: readonly string[];
  /** Set by the benchmark whatever the environment says: not part of the command. */
  readonly forced: Readonly<Record<string, string>>;
  /** Chosen by the benchmark itself (ports, repository): not part of the command. */
  readonly own: readonly string[];
  /** The npm script that runs this benchmark, e.g. `bench:grpc`. */
  readonly npmScript: string;
  /** How to run the built script without npm, e.g. `node dist/bench/grpc.js`. */
  readonly direct: string;
}

/** The command that reproduces this run, with the settings that were taken from the environment. */
export function commandLine(options: CommandLineOptions): string {
  const env = [...options.serverEnv, ...EXTRA_ENV]
    .filter((k) => !(k in options.forced) && !options.own.includes(k) && process.env[k] !== undefined && process.env[k] !== '')
    .map((k) => `${k}=${process.env[k]}`);
  const args = process.argv.slice(2);
  const viaNpm = process.env.npm_lifecycle_event === options.npmScript;
  const command = viaNpm ? `npm run ${options.npmScript}${args.length > 0 ? ` -- ${args.join(' ')}` : ''}` : `${options.direct} ${args.join(' ')}`.trim();
  return [...env, command].join(' ');
}
