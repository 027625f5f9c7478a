/**
 * Renicing threads by name as they appear, against a stand-in for /proc and setpriority: new
 * matching threads get the target nice value once, others and gone ones are left alone, and a
 * refusal to renice stops the scans and is reported.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startThreadNice, type ThreadSystem } from '../../../src/system/thread-nice.js';

function fakeSystem(threads: Map<number, string>, processNice = 0) {
  const nice = new Map<number, number>();
  const calls: Array<[number, number]> = [];
  let refuse: Error | undefined;
  const system: ThreadSystem = {
    listThreads: () => [...threads.keys()],
    threadName: (tid) => threads.get(tid),
    getPriority: () => processNice,
    setPriority: (tid, value) => {
      if (refuse) throw refuse;
      calls.push([tid, value]);
      nice.set(tid, value);
    },
  };
  return { system, calls, nice, refuseWith: (err: Error) => (refuse = err) };
}

describe('startThreadNice', () => {
  it('renices each matching thread once, as it appears, relative to the process', (t) => {
    const threads = new Map([
      [1, 'node'],
      [2, 'libvips worker'],
      [3, 'ort-inference'],
    ]);
    const fake = fakeSystem(threads, 2);
    const renicer = startThreadNice({ name: /^libvips/, increment: 10, system: fake.system });
    t.after(() => renicer.stop());
    assert.equal(renicer.scan(), 1);
    assert.deepEqual(fake.calls, [[2, 12]]);
    assert.equal(renicer.scan(), 0, 'nothing new');
    threads.set(4, 'libvips worker');
    threads.delete(2);
    assert.equal(renicer.scan(), 1);
    // A thread id reused by a new libvips thread is reniced again.
    threads.set(2, 'libvips worker');
    assert.equal(renicer.scan(), 1);
    assert.deepEqual(fake.calls, [
      [2, 12],
      [4, 12],
      [2, 12],
    ]);
  });

  it('caps the nice value at 19 and validates the increment', (t) => {
    const fake = fakeSystem(new Map([[7, 'libvips worker']]), 15);
    const renicer = startThreadNice({ name: /^libvips/, increment: 10, system: fake.system });
    t.after(() => renicer.stop());
    renicer.scan();
    assert.deepEqual(fake.calls, [[7, 19]]);
    assert.throws(() => startThreadNice({ name: /x/, increment: 20, system: fake.system }), /`increment` to be an integer from 0 to 19, got `20`/);
  });

  it('stops and reports once when renicing is refused, and skips threads gone meanwhile', (t) => {
    const threads = new Map([
      [1, 'libvips worker'],
      [2, 'libvips worker'],
    ]);
    const fake = fakeSystem(threads);
    const errors: unknown[] = [];
    const renicer = startThreadNice({ name: /^libvips/, increment: 5, system: fake.system, onError: (err) => errors.push(err) });
    t.after(() => renicer.stop());
    fake.refuseWith(Object.assign(new Error('A system error occurred: uv_os_setpriority returned ESRCH (no such process)'), { info: { code: 'ESRCH' } }));
    assert.equal(renicer.scan(), 0);
    assert.deepEqual(errors, [], 'a thread that ended is not an error');
    threads.set(3, 'libvips worker');
    fake.refuseWith(Object.assign(new Error('EACCES'), { info: { code: 'EACCES' } }));
    renicer.scan();
    assert.equal(errors.length, 1);
  });
});
