/**
 * Fixtures and small helpers for the model-tools tests: where the fixtures and the shared
 * trained ResNet-20 are, temporary folders, and reading weight shapes out of a graph.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { OnnxGraph } from '../../../src/model-tools/onnx-graph.js';
import { findRepoRoot } from '../../../bench/lib/repo-root.js';

export const REPO_ROOT = findRepoRoot(dirname(fileURLToPath(import.meta.url)));
export const TORCHVISION_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'torchvision');
export const FETCH_FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'model-fetch');
/** The trained ResNet-20 in ../shared (read-only, outside the project). */
export const SHARED_RESNET20_DIR = resolve(REPO_ROOT, '..', 'shared', 'models', 'resnet20-cifar10');

/** A fresh temporary folder, removed after the test. */
export async function tempDir(t: TestContext, prefix = 'model-tools-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const shapeKey = (dims: readonly number[]) => dims.join('x');

/** Shapes of the weights (second input) of every Conv and Gemm node, each list sorted: a multiset. */
export function weightShapes(graph: OnnxGraph): { conv: string[]; gemm: string[] } {
  const dims = new Map(graph.initializers.map((i) => [i.name, i.dims]));
  const of = (op: string) =>
    graph.nodes
      .filter((n) => n.opType === op)
      .map((n) => {
        const d = dims.get(n.inputs[1] ?? '');
        if (!d) throw new Error(`${op} node ${n.name} has no initializer weight`);
        return shapeKey(d);
      })
      .sort();
  return { conv: of('Conv'), gemm: of('Gemm') };
}

/** Shapes of every float initializer, sorted: a multiset. */
export function floatInitializerShapes(graph: OnnxGraph): string[] {
  return graph.initializers
    .filter((i) => i.elementType === 'float32')
    .map((i) => shapeKey(i.dims))
    .sort();
}

export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} and ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return max;
}
