/**
 * Running NVIDIA's Python tritonclient (../shared/clients/tritonclient, unmodified) from the
 * tests: whether it can run here, its check scripts (test/integration/tritonclient/*.py, one
 * JSON line per call), and the reference logits for their FP32 input, from onnxruntime directly.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import { openSession } from '../../src/inference/onnx-binding.js';
import { REPO_ROOT, RESNET20_DIR, SHARED } from '../helpers.js';

export const PYTHON = '/usr/bin/python3';
const KIT = join(SHARED, 'clients', 'tritonclient');
const SCRIPTS = join(REPO_ROOT, 'test', 'integration', 'tritonclient');
const env = { ...process.env, PYTHONPATH: KIT };

/** Why the client cannot run here, or `undefined` when it can. */
export function clientMissing(): string | undefined {
  const probe = spawnSync(
    PYTHON,
    ['-c', 'import numpy, rapidjson, gevent, geventhttpclient, aiohttp, grpc, google.protobuf, tritonclient.http, tritonclient.http.aio, tritonclient.grpc'],
    { env, cwd: tmpdir(), encoding: 'utf8' },
  );
  if (probe.error) return `${PYTHON} cannot run: ${probe.error.message}`;
  if (probe.status !== 0) return `tritonclient cannot be imported (Debian packages: see ${join(KIT, 'README.md')}): ${probe.stderr.trim().split('\n').pop()}`;
  return undefined;
}

/** Skip options for a test that needs the client: skipped where it is missing, but never in CI (.ci/run installs it). */
export function needsClient(why: string | undefined): { skip: string | false } {
  return { skip: process.env.CI === 'true' || why === undefined ? false : why };
}

export interface CallResult {
  readonly call: string;
  readonly ok: boolean;
  readonly detail: unknown;
}

/** Writes the check scripts' FP32 input run through onnxruntime directly to `dir`; returns the path. */
export async function expectedLogits(dir: string): Promise<string> {
  const inputPath = join(dir, 'input.json');
  const load = `import importlib.util as u; s = u.spec_from_file_location('check_http', ${JSON.stringify(join(SCRIPTS, 'check_http.py'))}); m = u.module_from_spec(s); s.loader.exec_module(m)`;
  const dump = spawnSync(PYTHON, ['-c', `${load}; m.save_tensor(${JSON.stringify(inputPath)}, m.default_tensor())`], { env, cwd: dir, encoding: 'utf8' });
  assert.equal(dump.status, 0, dump.stderr);
  const input = Float32Array.from(JSON.parse(await readFile(inputPath, 'utf8')) as number[]);
  const session = await openSession(join(RESNET20_DIR, 'model.onnx'), { intraOpThreads: 1 });
  const direct = await session.run({ input: { data: input, dims: [1, 3, 32, 32] } });
  await session.release?.();
  const logitsPath = join(dir, 'expected.json');
  await writeFile(logitsPath, JSON.stringify(Array.from(direct.logits!.data)));
  return logitsPath;
}

/**
 * Runs a check script and asserts every call passed (each reported as a test diagnostic).
 * @returns the calls reported.
 */
export async function runCheck(t: TestContext, script: string, args: readonly string[], cwd: string, minCalls: number): Promise<CallResult[]> {
  const { stdout } = await promisify(execFile)(PYTHON, [join(SCRIPTS, script), ...args], { env, cwd, timeout: 180_000 }).catch(
    (err: { stdout?: string; stderr?: string }) => ({ stdout: `${err.stdout ?? ''}\n${err.stderr ?? ''}` }),
  );
  const results = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as CallResult);
  for (const r of results) t.diagnostic(`${r.ok ? 'ok  ' : 'FAIL'} ${r.call}: ${JSON.stringify(r.detail).slice(0, 200)}`);
  assert.ok(results.length >= minCalls, `only ${results.length} calls reported:\n${stdout.slice(0, 2000)}`);
  const failed = results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], `calls failed:\n${failed.map((r) => `${r.call}: ${JSON.stringify(r.detail)}`).join('\n')}`);
  assert.match(stdout, /^\d+ passed, 0 failed$/m);
  return results;
}
