/**
 * Renders kustomizations with `kubectl kustomize` (the kustomize built into kubectl), once per
 * folder (and set of added components) per test process.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
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

/**
 * Components that no overlay uses but that a user may add to any overlay (`components:` in
 * their kustomization); each is rendered on top of every overlay.
 */
export const OPTIONAL_COMPONENTS = ['deploy/components/grpc-probes'] as const;

/** An overlay with an optional component added, as a user would deploy it. */
export interface Variant {
  /** `deploy/overlays/cpu + deploy/components/grpc-probes` */
  label: string;
  folder: string;
  components: string[];
}

/** Every overlay with each optional component added. */
export function componentVariants(): Variant[] {
  const overlays = deployableKustomizations().filter((f) => f.startsWith('deploy/overlays/'));
  return OPTIONAL_COMPONENTS.flatMap((component) => overlays.map((folder) => ({ label: `${folder} + ${component}`, folder, components: [component] })));
}

const rendered = new Map<string, K8sObject[]>();

function kustomize(dir: string, source: string): K8sObject[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseYamlStream(text, source) as K8sObject[];
}

/**
 * The objects `kubectl kustomize <folder>` prints; `folder` is relative to the repository. With
 * `components`, the folder is rendered with those components added on top, through a throwaway
 * kustomization (kustomize takes relative paths only) that lists the folder under `resources`
 * and the components under `components`: what adding them to the folder's own kustomization does.
 */
export function renderKustomization(folder: string, components: readonly string[] = []): K8sObject[] {
  const key = [folder, ...components].join(' + ');
  let objects = rendered.get(key);
  if (objects === undefined) {
    if (components.length === 0) {
      objects = kustomize(repoPath(folder), folder);
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'kustomize-variant-'));
      try {
        const rel = (path: string) => relative(dir, repoPath(path));
        const lines = [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          'resources:',
          `  - ${rel(folder)}`,
          'components:',
          ...components.map((c) => `  - ${rel(c)}`),
        ];
        writeFileSync(join(dir, 'kustomization.yaml'), `${lines.join('\n')}\n`);
        objects = kustomize(dir, key);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    rendered.set(key, objects);
  }
  return objects;
}

export function renderVariant(variant: Variant): K8sObject[] {
  return renderKustomization(variant.folder, variant.components);
}
