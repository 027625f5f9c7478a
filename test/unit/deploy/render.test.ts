import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deployableKustomizations, kubectlMissing, renderKustomization } from './helpers/kustomize.js';
import { ofKind } from './helpers/k8s.js';

const EXPECTED_KINDS: Record<string, string[]> = {
  'deploy/overlays/cpu': ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Namespace', 'PodDisruptionBudget', 'Service', 'ServiceAccount', 'ServiceMonitor'],
  'deploy/overlays/gpu': ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Namespace', 'PodDisruptionBudget', 'Service', 'ServiceAccount', 'ServiceMonitor'],
  // KEDA owns the HorizontalPodAutoscaler: the base's must be gone.
  'deploy/overlays/cpu-keda': ['ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'ScaledObject', 'Service', 'ServiceAccount', 'ServiceMonitor'],
  'deploy/kserve': ['InferenceService', 'ServingRuntime'],
};

describe('kubectl kustomize', { skip: kubectlMissing() }, () => {
  it('finds every documented kustomization, and no undocumented one', () => {
    assert.deepEqual(deployableKustomizations().sort(), Object.keys(EXPECTED_KINDS).sort());
  });

  for (const folder of Object.keys(EXPECTED_KINDS)) {
    it(`renders ${folder} with the expected kinds, each object named once`, () => {
      const objects = renderKustomization(folder);
      assert.deepEqual([...new Set(objects.map((o) => o.kind))].sort(), EXPECTED_KINDS[folder]);
      const ids = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
      assert.deepEqual(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'duplicate objects');
      for (const o of objects) assert.ok(o.apiVersion && o.metadata?.name, `incomplete object ${JSON.stringify(o).slice(0, 120)}`);
    });
  }

  it('renders the base on its own (overlays build on it)', () => {
    assert.ok(renderKustomization('deploy/base').length > 0);
  });

  for (const folder of Object.keys(EXPECTED_KINDS).filter((f) => f.startsWith('deploy/overlays/'))) {
    it(`puts every object of ${folder} in the overlay's own namespace`, () => {
      const objects = renderKustomization(folder);
      const [namespace, ...others] = ofKind(objects, 'Namespace');
      assert.ok(namespace && others.length === 0, 'exactly one Namespace');
      const outside = objects.filter((o) => o.kind !== 'Namespace' && o.metadata.namespace !== namespace.metadata.name);
      assert.deepEqual(outside.map((o) => `${o.kind}/${o.metadata.name} in ${o.metadata.namespace}`), []);
    });
  }

  it('gives the gpu overlay a namespace of its own, so it can run beside the cpu one', () => {
    const namespaceOf = (folder: string) => ofKind(renderKustomization(folder), 'Namespace')[0]?.metadata.name;
    assert.notEqual(namespaceOf('deploy/overlays/gpu'), namespaceOf('deploy/overlays/cpu'));
  });
});
