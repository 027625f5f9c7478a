/**
 * Load/unload cycles in explicit mode against the real server process, measured in its
 * /proc/<pid>/task and /proc/<pid>/fd: a retired version's workers, sessions and files must
 * all go, so after the last cycle the server has exactly the threads and descriptors it had
 * after the first. (The first cycle, not startup, is the baseline: libuv's thread pool and
 * V8's platform threads start on first use and stay.) RSS is the benchmark's
 * (bench/model-cycles.ts, with ResNet-50), not asserted here: the allocator keeps freed
 * pages, so a bound on it is a measurement, not a rule.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { httpPost } from '../../bench/lib/http-post.js';
import { fdCount, threadCount, threadsByName } from '../../bench/lib/proc-counts.js';
import { startServer } from '../../bench/lib/server-process.js';
import { REPO_ROOT, RESNET20_CONFIG, RESNET20_DIR, tempRepository } from '../helpers.js';

const CYCLES = 10;

interface Counts {
  readonly threads: number;
  readonly fds: number;
  readonly inference: number;
}

describe('model load/unload cycles', () => {
  it(`${CYCLES} cycles leave the server process with the threads and descriptors of the first`, async (t) => {
    if (process.platform !== 'linux') {
      t.skip("needs Linux /proc to count a process's threads and descriptors");
      return;
    }
    const repo = await tempRepository(t, [{ name: 'resnet20', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
    const server = await startServer({
      entry: join(REPO_ROOT, 'dist', 'src', 'server.js'),
      env: { MODEL_REPOSITORY: repo, SEED_DEFAULT_MODEL: 'false', MODEL_CONTROL_MODE: 'explicit', MODEL_LOAD: '', LOG_LEVEL: 'info', INTRA_OP_THREADS: '1' },
      logPath: join(repo, 'server.log'),
      readyTimeoutMs: 120_000,
    });
    t.after(() => server.stop());
    // One kept-alive connection for every call: the server holds the same one socket at every
    // count, so a descriptor more or fewer is the server's own.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const control = async (action: 'load' | 'unload') => {
      const res = await httpPost(`${server.baseUrl}/v2/repository/models/resnet20/${action}`, '{}', {
        agent,
        headers: { 'content-type': 'application/json' },
        timeoutMs: 120_000,
      });
      assert.equal(res.status, 200, `${action}: ${res.body}`);
    };
    const counts = (): Counts => ({
      threads: threadCount(server.pid),
      fds: fdCount(server.pid),
      inference: threadsByName(server.pid).get('ort-inference') ?? 0,
    });

    const perCycle: Counts[] = [];
    let loaded: Counts | undefined;
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      // The load answers once the version is warmed up; the unload once its workers have ended.
      await control('load');
      loaded ??= counts();
      await control('unload');
      perCycle.push(counts());
    }
    t.diagnostic(`loaded (cycle 1): ${JSON.stringify(loaded)}; after each unload: ${perCycle.map((c) => `${c.threads}t/${c.fds}fd`).join(' ')}`);

    assert.ok(loaded!.inference >= 1, 'a loaded version runs on ort-inference threads');
    const first = perCycle[0]!;
    const last = perCycle.at(-1)!;
    // onnxruntime starts one thread of its own with the process's first session and keeps it as
    // long as the library is loaded (measured: 11 threads, 12 with a session open, still 12 after
    // release, and so for every later session). Started from the first worker, it inherits that
    // thread's name, so one `ort-inference` thread is left after an unload; never more.
    assert.ok(first.inference <= 1, `only onnxruntime's own thread is left named ort-inference after an unload (${first.inference})`);
    assert.equal(last.inference, first.inference, 'no inference thread outlives its unload');
    assert.equal(last.threads, first.threads, `threads after cycle ${CYCLES} against cycle 1: ${perCycle.map((c) => c.threads).join(', ')}`);
    assert.equal(last.fds, first.fds, `open descriptors after cycle ${CYCLES} against cycle 1: ${perCycle.map((c) => c.fds).join(', ')}`);
  });
});
