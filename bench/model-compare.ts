/**
 * Is the built resnet50 as fast in onnxruntime as torchvision's own export of resnet50?
 *
 *   npm run build && node dist/bench/model-compare.js [--rounds 30] [--threads 2] [--batches 1,8]
 *
 * Exports torchvision's resnet50 (random weights, opset 13, dynamic batch axis) once with
 * /usr/bin/python3 into .bench/, builds this project's resnet50 next to it, opens both in one
 * process with the same onnxruntime settings, and times them on the same input, alternating
 * which runs first in each round (ABBA) so drift in machine load hits both alike.
 * Prints the machine, the date, the median time of each, the ratio of the medians (built /
 * torchvision) and the median of the per-round ratios.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { OnnxSession } from '../src/inference/onnx-binding.js';
import { openSession } from '../src/inference/onnx-binding.js';
import { buildModelFiles } from '../src/model-tools/build.js';
import { decodeModel } from '../src/model-tools/onnx-proto.js';
import { createRandom } from '../src/model-tools/prng.js';
import { findRepoRoot } from './lib/repo-root.js';

const ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
const CACHE = join(ROOT, '.bench');
const PYTHON = '/usr/bin/python3';

function positiveInt(name: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new Error(`--${name} must be an integer from 1 and up, got "${value}"`);
  return Number(value);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function opCounts(path: string): string {
  const counts = new Map<string, number>();
  for (const n of decodeModel(readFileSync(path)).graph.nodes) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
  return [...counts].map(([op, n]) => `${op} ${n}`).join(', ');
}

function exportTorchvision(path: string): void {
  if (existsSync(path)) return;
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: install Debian's python3-torchvision to export the reference model`);
  process.stdout.write(`Exporting torchvision resnet50 to ${path} ...\n`);
  execFileSync(PYTHON, [join(ROOT, 'scripts', 'fixtures', 'torchvision-export.py'), '--arch', 'resnet50', '--out', path], { stdio: 'inherit' });
}

async function timeRun(session: OnnxSession, input: { data: Float32Array; dims: number[] }): Promise<number> {
  const started = performance.now();
  await session.run({ input });
  return performance.now() - started;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '30' },
      warmup: { type: 'string', default: '3' },
      threads: { type: 'string', default: '2' },
      batches: { type: 'string', default: '1,8' },
    },
  });
  const rounds = positiveInt('rounds', values.rounds);
  const warmup = positiveInt('warmup', values.warmup);
  const threads = positiveInt('threads', values.threads);
  const batches = values.batches.split(',').map((b) => positiveInt('batches', b.trim()));

  await mkdir(CACHE, { recursive: true });
  const torchvisionPath = join(CACHE, 'torchvision-resnet50.onnx');
  exportTorchvision(torchvisionPath);
  const { modelPath: builtPath } = await buildModelFiles({ arch: 'resnet50', outDir: join(CACHE, 'built-resnet50') });

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const ortVersion = (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string }).version;
  process.stdout.write(
    `\nmodel-compare: built resnet50 vs torchvision export, onnxruntime-node ${ortVersion}, CPU execution provider\n` +
      `date     ${new Date().toISOString()}\n` +
      `machine  ${cpu}, ${cpus().length} logical cores (${availableParallelism()} available), load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n` +
      `node     ${process.version}; ${threads} intra-op threads, graph optimisation "all", sequential execution\n` +
      `settings ${warmup} warm-up runs each, then ${rounds} rounds per batch size, alternating order (ABBA)\n` +
      `torchvision graph: ${opCounts(torchvisionPath)}\n` +
      `built graph:       ${opCounts(builtPath)}\n\n`,
  );

  const sessions = {
    torchvision: await openSession(torchvisionPath, { intraOpThreads: threads }),
    built: await openSession(builtPath, { intraOpThreads: threads }),
  };
  try {
    process.stdout.write('batch  torchvision median ms  built median ms  ratio of the medians  median paired ratio\n');
    for (const batch of batches) {
      const input = { data: createRandom(batch).fillUniform(new Float32Array(batch * 3 * 224 * 224), -2, 2), dims: [batch, 3, 224, 224] };
      for (let i = 0; i < warmup; i++) {
        await timeRun(sessions.torchvision, input);
        await timeRun(sessions.built, input);
      }
      const times = { torchvision: [] as number[], built: [] as number[] };
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? (['torchvision', 'built'] as const) : (['built', 'torchvision'] as const);
        for (const name of order) times[name].push(await timeRun(sessions[name], input));
      }
      const tv = median(times.torchvision);
      const built = median(times.built);
      // The two runs of a round are adjacent in time, so their ratio cancels most of the drift
      // in load from other processes; its median is the steadier estimate on a busy machine.
      const paired = median(times.built.map((b, i) => b / times.torchvision[i]!));
      process.stdout.write(
        `${String(batch).padStart(5)}  ${tv.toFixed(1).padStart(21)}  ${built.toFixed(1).padStart(15)}  ${(built / tv).toFixed(3).padStart(19)}  ${paired.toFixed(3).padStart(20)}\n`,
      );
    }
  } finally {
    await sessions.torchvision.release();
    await sessions.built.release();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`model-compare failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
