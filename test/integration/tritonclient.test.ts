/**
 * NVIDIA's own Python client, unmodified and in its default modes, against the real server with
 * the shared ResNet-20: tritonclient.http and tritonclient.http.aio, every call listed in
 * test/integration/tritonclient/check_http.py (health, metadata, versioned readiness, FP32 in
 * binary and JSON, outputs in binary and JSON, BYTES raw PNG and base64 JSON, classification,
 * gzip both ways, unknown model, wrong shape). The FP32 logits must equal onnxruntime's direct
 * run to 1e-5 in every mode. The client needs Debian's python3 packages (.ci/run installs
 * them); without them the test says so and skips, but in CI (`CI=true`) it fails.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { openSession } from '../../src/inference/onnx-binding.js';
import { PHOTOS_DIR, REPO_ROOT, RESNET20_DIR, resnet20App, SHARED } from '../helpers.js';
import { listen } from './hostile-support.js';

const PYTHON = '/usr/bin/python3';
const KIT = join(SHARED, 'clients', 'tritonclient');
const SCRIPT = join(REPO_ROOT, 'test', 'integration', 'tritonclient', 'check_http.py');
const env = { ...process.env, PYTHONPATH: KIT };

/** Why the client cannot run here, or `undefined` when it can. */
function missing(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import numpy, rapidjson, gevent, geventhttpclient, aiohttp, tritonclient.http, tritonclient.http.aio'], { env, cwd: tmpdir(), encoding: 'utf8' });
  if (probe.error) return `${PYTHON} cannot run: ${probe.error.message}`;
  if (probe.status !== 0) return `tritonclient cannot be imported (Debian packages: see ${join(KIT, 'README.md')}): ${probe.stderr.trim().split('\n').pop()}`;
  return undefined;
}

interface CallResult {
  readonly call: string;
  readonly ok: boolean;
  readonly detail: unknown;
}

describe('tritonclient (HTTP), unmodified, default modes', () => {
  const why = missing();
  // CI installs the client's packages (.ci/run): there a missing one is a failure, not a skip.
  it('can run here', { skip: process.env.CI === 'true' ? false : why === undefined ? false : why }, () => {
    assert.equal(why, undefined, why);
  });
  it('passes every call, with logits equal to onnxruntime direct to 1e-5', { skip: why }, async (t) => {
    const app = await resnet20App(t);
    const port = await listen(app);
    const dir = await mkdtemp(join(tmpdir(), 'tritonclient-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const inputPath = join(dir, 'input.json');
    const logitsPath = join(dir, 'expected.json');

    // The script's own FP32 input, run by onnxruntime directly: the reference for every mode.
    const load = `import importlib.util as u; s = u.spec_from_file_location('check_http', ${JSON.stringify(SCRIPT)}); m = u.module_from_spec(s); s.loader.exec_module(m)`;
    const dump = spawnSync(PYTHON, ['-c', `${load}; m.save_tensor(${JSON.stringify(inputPath)}, m.default_tensor())`], { env, cwd: dir, encoding: 'utf8' });
    assert.equal(dump.status, 0, dump.stderr);
    const input = Float32Array.from(JSON.parse(await readFile(inputPath, 'utf8')) as number[]);
    const session = await openSession(join(RESNET20_DIR, 'model.onnx'), { intraOpThreads: 1 });
    const direct = await session.run({ input: { data: input, dims: [1, 3, 32, 32] } });
    await session.release?.();
    await writeFile(logitsPath, JSON.stringify(Array.from(direct.logits!.data)));

    const { stdout } = await promisify(execFile)(
      PYTHON,
      [SCRIPT, '--url', `127.0.0.1:${port}`, '--model', 'resnet20', '--png', join(PHOTOS_DIR, 'chelsea.png'), '--expected-logits', logitsPath, '--tolerance', '1e-5'],
      { env, cwd: dir, timeout: 120_000 },
    ).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: `${err.stdout ?? ''}\n${err.stderr ?? ''}` }));
    const results = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as CallResult);
    for (const r of results) t.diagnostic(`${r.ok ? 'ok  ' : 'FAIL'} ${r.call}: ${JSON.stringify(r.detail).slice(0, 200)}`);
    assert.ok(results.length >= 25, `only ${results.length} calls reported:\n${stdout.slice(0, 2000)}`);
    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(failed, [], `calls failed:\n${failed.map((r) => `${r.call}: ${JSON.stringify(r.detail)}`).join('\n')}`);
    assert.match(stdout, /^\d+ passed, 0 failed$/m);
  });
});
