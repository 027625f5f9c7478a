import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { componentVariants, deployableKustomizations, kubectlMissing, renderKustomization, renderVariant } from './helpers/kustomize.js';
import { oneOfKind, type K8sObject } from './helpers/k8s.js';
import { unknownFields, validatorFor } from './helpers/validators.js';

function errorsOf(object: K8sObject): string[] {
  const validate = validatorFor(object.apiVersion, object.kind);
  if (validate === undefined) return [`no schema known for ${object.apiVersion} ${object.kind}: add one to helpers/validators.ts`];
  return validate(object);
}

const clone = <T>(value: T): T => structuredClone(value);

describe('rendered objects against their schemas', { skip: kubectlMissing() }, () => {
  for (const folder of [...deployableKustomizations(), 'deploy/base']) {
    it(`validates every object of ${folder}`, () => {
      const failures = renderKustomization(folder)
        .map((o) => ({ id: `${o.kind}/${o.metadata.name}`, errors: errorsOf(o) }))
        .filter((f) => f.errors.length > 0);
      assert.deepEqual(failures, []);
    });
  }

  for (const variant of componentVariants()) {
    it(`validates every object of ${variant.label}`, () => {
      const failures = renderVariant(variant)
        .map((o) => ({ id: `${o.kind}/${o.metadata.name}`, errors: errorsOf(o) }))
        .filter((f) => f.errors.length > 0);
      assert.deepEqual(failures, []);
    });
  }
});

// The validators must be able to fail: each case breaks one valid rendered object.
describe('schema validators reject what the API server would', { skip: kubectlMissing() }, () => {
  const cpu = () => renderKustomization('deploy/overlays/cpu');
  const kserve = () => renderKustomization('deploy/kserve');

  it('rejects a misspelt Deployment field (unknown field)', () => {
    const deployment = clone(oneOfKind(cpu(), 'Deployment')) as K8sObject & { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    const container = deployment.spec.template.spec.containers[0] as Record<string, unknown>;
    container.imagePulPolicy = container.imagePullPolicy;
    assert.deepEqual(errorsOf(deployment), ['/spec/template/spec/containers/0/imagePulPolicy: unknown field']);
  });

  it('rejects a bad CPU quantity', () => {
    const deployment = clone(oneOfKind(cpu(), 'Deployment')) as K8sObject & {
      spec: { template: { spec: { containers: { resources: { limits: Record<string, string> } }[] } } };
    };
    (deployment.spec.template.spec.containers[0] as { resources: { limits: Record<string, string> } }).resources.limits.cpu = 'two';
    assert.match(errorsOf(deployment).join('\n'), /limits\/cpu/);
  });

  it('rejects a ServiceMonitor with a malformed scrape interval', () => {
    const monitor = clone(oneOfKind(cpu(), 'ServiceMonitor')) as K8sObject & { spec: { endpoints: { interval: string }[] } };
    (monitor.spec.endpoints[0] as { interval: string }).interval = 'often';
    assert.match(errorsOf(monitor).join('\n'), /interval/);
  });

  it('rejects a KEDA trigger with an unknown field', () => {
    const scaled = clone(oneOfKind(renderKustomization('deploy/overlays/cpu-keda'), 'ScaledObject')) as K8sObject & {
      spec: { triggers: Record<string, unknown>[] };
    };
    (scaled.spec.triggers[0] as Record<string, unknown>).treshold = '1';
    assert.deepEqual(errorsOf(scaled), ['/spec/triggers/0/treshold: unknown field']);
  });

  it('rejects a gRPC probe with a named port (gRPC probes take numbers only) or without a port', () => {
    const deployment = clone(oneOfKind(renderKustomization('deploy/overlays/cpu', ['deploy/components/grpc-probes']), 'Deployment')) as K8sObject & {
      spec: { template: { spec: { containers: { livenessProbe: { grpc: Record<string, unknown> } }[] } } };
    };
    const grpc = (deployment.spec.template.spec.containers[0] as { livenessProbe: { grpc: Record<string, unknown> } }).livenessProbe.grpc;
    grpc.port = 'grpc';
    assert.match(errorsOf(deployment).join('\n'), /grpc\/port/);
    delete grpc.port;
    assert.match(errorsOf(deployment).join('\n'), /port/);
  });

  it('rejects a ServingRuntime container field that the CRD does not define', () => {
    const runtime = clone(oneOfKind(kserve(), 'ServingRuntime')) as K8sObject & { spec: { containers: Record<string, unknown>[] } };
    (runtime.spec.containers[0] as Record<string, unknown>).readinesProbe = {};
    assert.match(errorsOf(runtime).join('\n'), /readinesProbe/);
  });

  it('rejects an InferenceService without a predictor, or with a storageUri that is not a string', () => {
    const service = clone(oneOfKind(kserve(), 'InferenceService')) as K8sObject & { spec: { predictor: { model: { storageUri: unknown } } } };
    const noPredictor = clone(service) as K8sObject & { spec: Record<string, unknown> };
    delete noPredictor.spec.predictor;
    assert.match(errorsOf(noPredictor).join('\n'), /predictor/);
    service.spec.predictor.model.storageUri = 42;
    assert.match(errorsOf(service).join('\n'), /storageUri/);
  });
});

describe('unknownFields', () => {
  const accepts = (candidate: object) => {
    const c = candidate as { known?: unknown; nested?: { typed?: unknown } };
    return (
      (c.known === undefined || typeof c.known === 'string') &&
      (c.nested === undefined || typeof c.nested === 'object') &&
      (c.nested?.typed === undefined || typeof c.nested.typed === 'number')
    );
  };

  it('reports the fields that the validator does not look at, and only those', () => {
    assert.deepEqual(unknownFields({ known: 'a', extra: 1, nested: { typed: 2, stray: 'x' } }, accepts), ['/extra', '/nested/stray']);
  });

  it('reports nothing for an object whose fields are all checked', () => {
    assert.deepEqual(unknownFields({ known: 'a', nested: { typed: 2 } }, accepts), []);
  });
});
