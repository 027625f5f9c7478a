/**
 * Class names shipped with the project (`assets/labels/`), found from this module's location
 * so they resolve the same from `src/` and from the compiled `dist/src/`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findProjectRoot } from '../system/project-root.js';
import type { LabelSet } from './architectures.js';

const EXPECTED_COUNT: Readonly<Record<LabelSet, number>> = { 'imagenet-1k': 1000, cifar10: 10 };

export function labelSetPath(set: LabelSet): string {
  return join(findProjectRoot(), 'assets', 'labels', `${set}.txt`);
}

/** Reads a shipped label set, checking it has the number of classes it should. */
export async function readLabelSet(set: LabelSet): Promise<string[]> {
  const labels = parseLabels(await readFile(labelSetPath(set), 'utf8'));
  if (labels.length !== EXPECTED_COUNT[set]) {
    throw new Error(`assets/labels/${set}.txt holds ${labels.length} names, expected ${EXPECTED_COUNT[set]}`);
  }
  return labels;
}

/** One name a line; a trailing newline does not add a class. */
export function parseLabels(text: string): string[] {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** Placeholder names for a class count no shipped label set fits. */
export function genericLabels(classes: number): string[] {
  return Array.from({ length: classes }, (_, i) => `class_${i}`);
}

export function formatLabels(labels: readonly string[]): string {
  return `${labels.join('\n')}\n`;
}
