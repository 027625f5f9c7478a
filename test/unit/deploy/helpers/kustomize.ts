/**
 * Renders kustomizations with `kubectl kustomize` (the kustomize built into kubectl), once per
 * folder per test process.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { parseYamlStream, repoPath } from './repo.js';
import type { K8sObject } from './k8s.js';

/** Why rendering cannot run here, or `undefined` when kubectl is there. */
export function kubectlMissing(): string | undefined {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (probe.error) return `kubectl is not installed (${probe.error.message}): cannot render the kustomizations`;
  if (probe.status !== 0) return `kubectl version --client failed: ${probe.stderr}`;
  return undefined;
}

/** The kustomizations a user deploys: every overlay, and the KServe manifests. */
export function deployableKustomizations(): string[] {
  const overlays = readdirSync(repoPath('deploy', 'overlays'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => `deploy/overlays/${e.name}`);
  return [...overlays.sort(), 'deploy/kserve'];
}

const rendered = new Map<string, K8sObject[]>();

/** The objects `kubectl kustomize <folder>` prints; `folder` is relative to the repository. */
export function renderKustomization(folder: string): K8sObject[] {
  let objects = rendered.get(folder);
  if (objects === undefined) {
    const text = execFileSync('kubectl', ['kustomize', repoPath(folder)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    objects = parseYamlStream(text, folder) as K8sObject[];
    rendered.set(folder, objects);
  }
  return objects;
}
