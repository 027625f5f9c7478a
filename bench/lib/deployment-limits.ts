/** The container memory limit that a Kubernetes manifest in deploy/ gives the server. */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes memory quantity (`2Gi`, `512M`, `1073741824`) in bytes. */
export function parseMemoryQuantity(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity.trim());
  if (match === null) throw new RangeError(`Expected a Kubernetes memory quantity such as \`2Gi\`, got \`${quantity}\``);
  const unit = match[2] ?? '';
  return Number(match[1]) * (BINARY[unit] ?? DECIMAL[unit]!);
}

export interface MemoryLimit {
  /** As written in the manifest, e.g. `2Gi`. */
  readonly quantity: string;
  readonly bytes: number;
}

/** `resources.limits.memory` of container `container` of the Deployment in the manifest at `path`. */
export function readDeploymentMemoryLimit(path: string, container = 'server'): MemoryLimit {
  for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) {
    const manifest = doc.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: Array<{ name?: string; resources?: { limits?: { memory?: unknown } } }> } } };
    } | null;
    if (manifest?.kind !== 'Deployment') continue;
    const memory = manifest.spec?.template?.spec?.containers?.find((c) => c.name === container)?.resources?.limits?.memory;
    if (memory === undefined) continue;
    return { quantity: String(memory), bytes: parseMemoryQuantity(String(memory)) };
  }
  throw new Error(`${path} holds no Deployment whose container \`${container}\` has resources.limits.memory`);
}
