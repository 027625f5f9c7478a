/** The coalescer's rules (src/serving/coalescer.ts), with gated promises: no timers, no sleeping. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCoalescer } from '../../../src/serving/coalescer.js';
import { gate, type Gate } from './support.js';

/** A start that records what it was asked to run and holds each item until the test settles it. */
function recordingStart() {
  const calls: Array<{ indices: readonly number[]; signal: AbortSignal; gates: Array<Gate<string>> }> = [];
  const start = (indices: readonly number[], signal: AbortSignal) => {
    const gates = indices.map(() => gate<string>());
    calls.push({ indices, signal, gates });
    return gates.map((g) => g.promise);
  };
  return { calls, start };
}

const settled = async <T>(p: Promise<T>) => {
  try {
    return { value: await p };
  } catch (err) {
    return { error: (err as Error).message };
  }
};

describe('coalescer', () => {
  it('starts the keys not in flight together, and joins a later identical key to them', async () => {
    const c = createCoalescer<string>();
    const { calls, start } = recordingStart();
    const first = c.attach(['a', 'b'], start);
    assert.deepEqual(first.joined, [false, false]);
    const second = c.attach(['b', 'c'], start);
    assert.deepEqual(second.joined, [true, false]);
    assert.deepEqual(
      calls.map((call) => call.indices),
      [[0, 1], [1]],
      'the second call started only c',
    );
    assert.equal(c.waitersOf('b'), 2);
    calls[0]!.gates[1]!.resolve('B');
    assert.equal(await second.results[0], 'B');
    assert.equal(await first.results[1], 'B');
  });

  it('joins a key repeated within one attach to its first occurrence', () => {
    const c = createCoalescer<string>();
    const { calls, start } = recordingStart();
    const a = c.attach(['x', 'x', 'y'], start);
    assert.deepEqual(a.joined, [false, true, false]);
    assert.deepEqual(calls[0]!.indices, [0, 2]);
    assert.equal(a.results[0], a.results[1]);
  });

  it('gives every waiter the error, and forgets the work once settled so a later request starts afresh', async () => {
    const c = createCoalescer<string>();
    const { calls, start } = recordingStart();
    const first = c.attach(['bad'], start);
    const second = c.attach(['bad'], start);
    calls[0]!.gates[0]!.reject(new Error('INVALID_IMAGE'));
    assert.deepEqual(await settled(first.results[0]!), { error: 'INVALID_IMAGE' });
    assert.deepEqual(await settled(second.results[0]!), { error: 'INVALID_IMAGE' });
    assert.equal(c.inflight, 0, 'an error is not kept');
    const third = c.attach(['bad'], start);
    assert.deepEqual(third.joined, [false]);
    assert.equal(calls.length, 2);
  });

  it('lets a waiter leave without touching work others still wait on', async () => {
    const c = createCoalescer<string>();
    const { calls, start } = recordingStart();
    const leader = c.attach(['k'], start);
    const follower = c.attach(['k'], start);
    leader.release();
    leader.release();
    assert.equal(calls[0]!.signal.aborted, false);
    assert.equal(c.waitersOf('k'), 1);
    calls[0]!.gates[0]!.resolve('K');
    assert.equal(await follower.results[0], 'K');
  });

  it('aborts a start once no key of it has a waiter, and forgets its keys', () => {
    const c = createCoalescer<string>();
    const { calls, start } = recordingStart();
    const one = c.attach(['a', 'b'], start);
    const other = c.attach(['b'], start);
    one.release();
    assert.equal(calls[0]!.signal.aborted, false, 'b is still wanted');
    assert.equal(c.waitersOf('a'), 0, 'a is forgotten: a later request starts it again');
    other.release();
    assert.equal(calls[0]!.signal.aborted, true);
    assert.equal(c.inflight, 0);
    // Nobody hears the abandoned items' outcome; rejecting them must not be unhandled.
    for (const g of calls[0]!.gates) g.reject(new Error('CANCELLED'));
  });

  it('does not abort a start whose remaining keys have all settled', async () => {
    const c = createCoalescer<string>();
    const { calls, start } = recordingStart();
    const a = c.attach(['a', 'b'], start);
    calls[0]!.gates[0]!.resolve('A');
    calls[0]!.gates[1]!.resolve('B');
    await Promise.all(a.results);
    a.release();
    assert.equal(calls[0]!.signal.aborted, false);
  });

  it('aborts when the last waiter leaves an item whose sibling has settled', async () => {
    const c = createCoalescer<string>();
    const { calls, start } = recordingStart();
    const a = c.attach(['a', 'b'], start);
    calls[0]!.gates[0]!.resolve('A');
    await a.results[0];
    a.release();
    assert.equal(calls[0]!.signal.aborted, true, 'b is unsettled and nobody waits on it');
    calls[0]!.gates[1]!.reject(new Error('CANCELLED'));
  });

  it('fails every key of a start that throws', async () => {
    const c = createCoalescer<string>();
    const a = c.attach(['a', 'b'], () => {
      throw new Error('boom');
    });
    assert.deepEqual(await settled(a.results[0]!), { error: 'boom' });
    assert.deepEqual(await settled(a.results[1]!), { error: 'boom' });
    assert.equal(c.inflight, 0);
  });
});
