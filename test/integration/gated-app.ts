/**
 * An app whose inference worker is a gated stand-in (test/fixtures/workers/gated-worker.ts), so
 * a test decides which requests are queued, running or done; and a bounded wait on the event
 * loop instead of sleeping.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { BroadcastChannel } from 'node:worker_threads';
import { GATE_CHANNEL, type GateCommand, type GateEvent } from '../fixtures/workers/gated-worker.js';
import { buildApp } from '../../src/app.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository, testConfig } from '../helpers.js';

const GATED_WORKER = new URL('../fixtures/workers/gated-worker.js', import.meta.url);

export async function gatedApp(t: TestContext, env: Record<string, string>) {
  const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const app = await buildApp(testConfig(repo, env), { defaultMetrics: false, workerUrl: GATED_WORKER });
  const channel = new BroadcastChannel(GATE_CHANNEL);
  // Open the gate before closing: closing drains running batches, and a held one would
  // never finish if a failed assertion left the gate shut.
  t.after(async () => {
    channel.postMessage('open' satisfies GateCommand);
    await app.close();
    channel.close();
  });
  await app.ready();
  await app.serving.registry.load();
  const events: GateEvent[] = [];
  const waiters: Array<() => void> = [];
  channel.onmessage = (e) => {
    events.push((e as { data: GateEvent }).data);
    for (const w of waiters.splice(0)) w();
  };
  const nextEvent = (event: GateEvent['event']) =>
    new Promise<void>((resolve) => {
      const check = () => (events.some((e) => e.event === event) ? resolve() : waiters.push(check));
      check();
    });
  const gate = async (command: GateCommand) => {
    events.length = 0;
    const ack = nextEvent(command === 'open' ? 'opened' : 'closed');
    channel.postMessage(command);
    await ack;
  };
  return { app, gate, events, model: app.serving.registry.get('m') };
}

/** Resolves once `predicate` holds, checking on every turn of the event loop (bounded). */
export async function until(predicate: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (await predicate()) return;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail(`never happened: ${what}`);
}

