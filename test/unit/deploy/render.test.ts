import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { componentVariants, deployableKustomizations, kubectlMissing, OPTIONAL_COMPONENTS, renderKustomization, renderVariant } from './helpers/kustomize.js';
import { ofKind, oneOfKind, podTemplate, PROBE_KINDS, type Container, type K8sObject } from './helpers/k8s.js';
import { readRepoText, repoPath } from './helpers/repo.js';

const EXPECTED_KINDS: Record<string, string[]> = {
  'deploy/overlays/cpu': [
    'ConfigMap',
    'Deployment',
    'HorizontalPodAutoscaler',
    'Namespace',
    'PodDisruptionBudget',
    'Service',
    'ServiceAccount',
    'ServiceMonitor',
  ],
  'deploy/overlays/gpu': [
    'ConfigMap',
    'Deployment',
    'HorizontalPodAutoscaler',
    'Namespace',
    'PodDisruptionBudget',
    'Service',
    'ServiceAccount',
    'ServiceMonitor',
  ],
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
      assert.deepEqual(
        ids.filter((id, i) => ids.indexOf(id) !== i),
        [],
        'duplicate objects',
      );
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
      assert.deepEqual(
        outside.map((o) => `${o.kind}/${o.metadata.name} in ${o.metadata.namespace}`),
        [],
      );
    });
  }

  it('gives the gpu overlay a namespace of its own, so it can run beside the cpu one', () => {
    const namespaceOf = (folder: string) => ofKind(renderKustomization(folder), 'Namespace')[0]?.metadata.name;
    assert.notEqual(namespaceOf('deploy/overlays/gpu'), namespaceOf('deploy/overlays/cpu'));
  });
});

describe('kubectl kustomize with the optional components', { skip: kubectlMissing() }, () => {
  it('renders, on top of every overlay, each component that no overlay uses', () => {
    const components = readdirSync(repoPath('deploy', 'components'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `deploy/components/${e.name}`);
    const overlays = deployableKustomizations()
      .filter((f) => f.startsWith('deploy/overlays/'))
      .map((f) => readRepoText(f, 'kustomization.yaml'))
      .join('\n');
    const unused = components.filter((c) => !overlays.includes(`../../${c.slice('deploy/'.length)}`));
    assert.deepEqual(unused.sort(), [...OPTIONAL_COMPONENTS].sort());
  });

  for (const variant of componentVariants()) {
    it(`renders ${variant.label} with the same objects as the overlay alone`, () => {
      const id = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
      assert.deepEqual(renderVariant(variant).map(id).sort(), renderKustomization(variant.folder).map(id).sort());
    });
  }

  // The gRPC probes replace the HTTP probes' handlers, nothing else: periods, timeouts and
  // thresholds stay those of the overlay (the startup budget, including the GPU overlay's longer
  // one, and the shutdown timing of deploy/README.md hold as they are).
  for (const variant of componentVariants().filter((v) => v.components.includes('deploy/components/grpc-probes'))) {
    it(`${variant.label}: gRPC probes on the container port "grpc", the rest of the objects unchanged`, () => {
      const plain = renderKustomization(variant.folder);
      const objects = renderVariant(variant);
      const container = podTemplate(oneOfKind(objects, 'Deployment')).spec.containers.find((c) => c.name === 'server') as Container;
      const grpcPort = container.ports?.find((p) => p.name === 'grpc')?.containerPort;
      assert.ok(grpcPort !== undefined, 'the container declares a port named grpc');
      for (const kind of PROBE_KINDS) {
        const probe = container[kind];
        assert.equal(probe?.httpGet, undefined, `${kind} keeps its httpGet handler`);
        assert.equal(probe?.grpc?.port, grpcPort, `${kind} is not a gRPC probe on the grpc port (${grpcPort})`);
      }
      // Put the overlay's HTTP handlers back: what remains must be the overlay, exactly.
      const restored = structuredClone(objects);
      const plainContainer = podTemplate(oneOfKind(plain, 'Deployment')).spec.containers.find((c) => c.name === 'server') as Container;
      const restoredContainer = podTemplate(oneOfKind(restored, 'Deployment')).spec.containers.find((c) => c.name === 'server') as Container;
      for (const kind of PROBE_KINDS) {
        const probe = restoredContainer[kind];
        assert.ok(probe);
        delete probe.grpc;
        probe.httpGet = plainContainer[kind]?.httpGet;
      }
      assert.deepEqual(restored, plain);
    });
  }
});
