/**
 * An app whose inference worker is a gated stand-in (test/fixtures/workers/gated-worker.ts), so
 * a test decides which requests are queued, running or done; and a bounded wait on the event
 * loop instead of sleeping.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { gateControl } from '../fixtures/workers/gated-worker.js';
import { buildApp, type AppDeps } from '../../src/app.js';
import { RESNET20_CONFIG, RESNET20_DIR, tempRepository, testConfig } from '../helpers.js';

const GATED_WORKER = new URL('../fixtures/workers/gated-worker.js', import.meta.url);

export async function gatedApp(t: TestContext, env: Record<string, string>, deps: Pick<AppDeps, 'logStream' | 'logClock'> = {}) {
  const repo = await tempRepository(t, [{ name: 'm', from: RESNET20_DIR, config: RESNET20_CONFIG }]);
  const app = await buildApp(testConfig(repo, env), { ...deps, defaultMetrics: false, workerUrl: GATED_WORKER });
  const control = gateControl();
  // Open the gate before closing: closing drains running batches, and a held one would
  // never finish if a failed assertion left the gate shut.
  t.after(async () => {
    control.release();
    await app.close();
    control.close();
  });
  await app.ready();
  await app.serving.registry.load();
  return { app, gate: control.gate, events: control.events, model: app.serving.registry.get('m') };
}

/** Resolves once `predicate` holds, checking on every turn of the event loop (bounded). */
export async function until(predicate: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (await predicate()) return;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail(`never happened: ${what}`);
}
