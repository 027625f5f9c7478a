/**
 * The manifests agree with the server: probe paths exist in the API, ports are the ones it
 * listens on, every environment variable is one it reads (with a value it accepts), autoscalers
 * query metrics it exports, and the objects point at each other correctly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { documentedGetPaths, exportedMetricNames, serverConfig, serverEnvVars } from './helpers/app.js';
import { deployableKustomizations, kubectlMissing, renderKustomization } from './helpers/kustomize.js';
import { containerEnv, ofKind, oneOfKind, podTemplate, selects, type Container, type K8sObject } from './helpers/k8s.js';
import { parseYamlStream, readRepoText } from './helpers/repo.js';

const OVERLAYS = () => deployableKustomizations().filter((f) => f.startsWith('deploy/overlays/'));

/** Every server container of a rendering: Deployment containers and ServingRuntime containers. */
function serverContainers(objects: readonly K8sObject[]): { owner: string; container: Container }[] {
  const fromDeployments = ofKind(objects, 'Deployment').flatMap((d) => podTemplate(d).spec.containers.map((container) => ({ owner: `Deployment/${d.metadata.name}`, container })));
  const fromRuntimes = ofKind(objects, 'ServingRuntime').flatMap((r) => (r.spec as { containers: Container[] }).containers.map((container) => ({ owner: `ServingRuntime/${r.metadata.name}`, container })));
  return [...fromDeployments, ...fromRuntimes];
}

/** PromQL metric names in a query: identifiers followed by a label matcher or a range. */
function metricNamesIn(query: string): string[] {
  return [...query.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g)].map((m) => m[1] as string).filter((name) => !['sum', 'avg', 'max', 'min', 'by', 'rate'].includes(name));
}

describe('manifests against the server', { skip: kubectlMissing() }, () => {
  const everything = () => [...deployableKustomizations(), 'deploy/base'].map((folder) => ({ folder, objects: renderKustomization(folder) }));

  it('probe paths are GET routes documented in openapi.yaml', () => {
    const paths = documentedGetPaths();
    const missing: string[] = [];
    for (const { folder, objects } of everything()) {
      for (const { owner, container } of serverContainers(objects)) {
        for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
          const path = container[kind]?.httpGet?.path;
          if (path === undefined) missing.push(`${folder} ${owner} ${kind}: no httpGet path`);
          else if (!paths.has(path)) missing.push(`${folder} ${owner} ${kind}: ${path} is not a GET path of openapi.yaml`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });

  it('probes and named ports point at the port the server listens on (PORT), metrics at METRICS_PORT', () => {
    for (const { folder, objects } of everything()) {
      for (const { owner, container } of serverContainers(objects)) {
        const config = serverConfig(containerEnv(container, objects));
        const portNumber = (port: number | string) => (typeof port === 'number' ? port : container.ports?.find((p) => p.name === port)?.containerPort);
        for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
          const port = container[kind]?.httpGet?.port;
          assert.ok(port !== undefined, `${folder} ${owner} ${kind} has no port`);
          assert.equal(portNumber(port), config.port, `${folder} ${owner} ${kind} probes port ${port}, the server listens on ${config.port}`);
        }
        assert.ok(container.ports?.some((p) => p.containerPort === config.port), `${folder} ${owner} does not declare the server port ${config.port}`);
        if (config.metricsPort !== undefined) {
          assert.equal(container.ports?.find((p) => p.name === 'metrics')?.containerPort, config.metricsPort, `${folder} ${owner}: port "metrics" is not METRICS_PORT`);
        }
      }
    }
  });

  it('every environment variable set is one the server reads, with a value it accepts', () => {
    for (const { folder, objects } of everything()) {
      for (const { owner, container } of serverContainers(objects)) {
        const env = containerEnv(container, objects);
        const unknown = [...env.keys()].filter((name) => !serverEnvVars.has(name));
        assert.deepEqual(unknown, [], `${folder} ${owner} sets variables the server never reads`);
        assert.doesNotThrow(() => serverConfig(env), `${folder} ${owner}: the server would refuse this environment`);
      }
    }
  });

  it('Service, PodDisruptionBudget and ServiceMonitor select what they should, on ports that exist', () => {
    const paths = documentedGetPaths();
    for (const folder of OVERLAYS()) {
      const objects = renderKustomization(folder);
      const deployment = oneOfKind(objects, 'Deployment');
      const pod = podTemplate(deployment);
      const podLabels = pod.metadata?.labels;
      const service = oneOfKind(objects, 'Service') as K8sObject & { spec: { selector: Record<string, string>; ports: { name: string; targetPort: string | number }[] } };
      assert.ok(selects(service.spec.selector, podLabels), `${folder}: the Service does not select the pods`);
      assert.ok(selects((deployment.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels, podLabels), `${folder}: the Deployment selector does not match its template`);
      const pdb = oneOfKind(objects, 'PodDisruptionBudget') as K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } };
      assert.ok(selects(pdb.spec.selector.matchLabels, podLabels), `${folder}: the PodDisruptionBudget does not select the pods`);
      const containerPortNames = new Set(pod.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
      for (const port of service.spec.ports) {
        assert.ok(typeof port.targetPort === 'string' && containerPortNames.has(port.targetPort), `${folder}: Service port ${port.name} targets ${port.targetPort}, not a named container port`);
      }
      const monitor = oneOfKind(objects, 'ServiceMonitor') as K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } };
      assert.ok(selects(monitor.spec.selector.matchLabels, service.metadata.labels), `${folder}: the ServiceMonitor does not select the Service`);
      for (const endpoint of monitor.spec.endpoints) {
        const servicePort = service.spec.ports.find((p) => p.name === endpoint.port);
        assert.equal(servicePort?.targetPort, 'metrics', `${folder}: the ServiceMonitor scrapes port ${endpoint.port}, which is not the metrics port`);
        assert.ok(paths.has(endpoint.path), `${folder}: ${endpoint.path} is not documented in openapi.yaml`);
      }
    }
  });

  it('autoscalers target the Deployment', () => {
    for (const folder of OVERLAYS()) {
      const objects = renderKustomization(folder);
      const deployment = oneOfKind(objects, 'Deployment');
      const scalers = [...ofKind(objects, 'HorizontalPodAutoscaler'), ...ofKind(objects, 'ScaledObject')];
      assert.equal(scalers.length, 1, `${folder}: want exactly one autoscaler, found ${scalers.length}`);
      const target = (scalers[0]?.spec as { scaleTargetRef: { kind?: string; name: string } }).scaleTargetRef;
      assert.deepEqual({ kind: target.kind ?? 'Deployment', name: target.name }, { kind: 'Deployment', name: deployment.metadata.name }, folder);
    }
  });

  it('KEDA queries ask for metrics the server exports, in the ScaledObject namespace and Service', () => {
    const exported = exportedMetricNames();
    const objects = renderKustomization('deploy/overlays/cpu-keda');
    const scaled = oneOfKind(objects, 'ScaledObject') as K8sObject & { spec: { triggers: { type: string; metadata: Record<string, string> }[] } };
    const service = oneOfKind(objects, 'Service');
    const queries = scaled.spec.triggers.filter((t) => t.type === 'prometheus').map((t) => t.metadata.query ?? '');
    assert.ok(queries.length >= 2, 'queue depth and in-flight triggers');
    const asked = queries.flatMap(metricNamesIn);
    assert.deepEqual(asked.sort(), ['inference_inflight_batches', 'inference_queue_depth']);
    for (const name of asked) assert.ok(exported.has(name), `${name} is not exported by the server`);
    for (const query of queries) {
      assert.match(query, new RegExp(`namespace="${scaled.metadata.namespace}"`), 'query filters on another namespace');
      assert.match(query, new RegExp(`service="${service.metadata.name}"`), 'query filters on another service');
    }
  });

  it('Prometheus Adapter rules serve the metrics the gpu HorizontalPodAutoscaler asks for, from exported series', () => {
    const exported = exportedMetricNames();
    const [values] = parseYamlStream(readRepoText('deploy', 'prometheus-adapter', 'values.yaml'), 'values.yaml') as {
      rules: { custom: { seriesQuery: string; name: { as: string }; metricsQuery: string }[] };
    }[];
    const rules = values?.rules.custom ?? [];
    for (const rule of rules) {
      for (const name of metricNamesIn(rule.seriesQuery)) assert.ok(exported.has(name), `adapter rule reads ${name}, which the server does not export`);
      assert.match(rule.metricsQuery, /<<\.Series>>\{<<\.LabelMatchers>>\}/);
    }
    const served = new Set(rules.map((r) => r.name.as));
    const hpa = oneOfKind(renderKustomization('deploy/overlays/gpu'), 'HorizontalPodAutoscaler') as K8sObject & {
      spec: { metrics: { type: string; pods?: { metric: { name: string } } }[] };
    };
    const podMetrics = hpa.spec.metrics.filter((m) => m.type === 'Pods').map((m) => m.pods?.metric.name ?? '');
    assert.deepEqual(podMetrics.sort(), ['inference_inflight_batches', 'inference_queue_depth']);
    for (const name of podMetrics) assert.ok(served.has(name), `no adapter rule serves ${name}`);
  });

  it('the InferenceService uses the ServingRuntime with a format and protocol it declares', () => {
    const objects = renderKustomization('deploy/kserve');
    const runtime = oneOfKind(objects, 'ServingRuntime') as K8sObject & {
      spec: { supportedModelFormats: { name: string; version?: string }[]; protocolVersions: string[]; containers: Container[] };
    };
    const service = oneOfKind(objects, 'InferenceService') as K8sObject & {
      spec: { predictor: { model: { runtime: string; modelFormat: { name: string; version?: string }; protocolVersion: string } } };
    };
    const model = service.spec.predictor.model;
    assert.equal(model.runtime, runtime.metadata.name);
    assert.ok(runtime.spec.supportedModelFormats.some((f) => f.name === model.modelFormat.name && f.version === model.modelFormat.version));
    assert.ok(runtime.spec.protocolVersions.includes(model.protocolVersion));
    const config = serverConfig(containerEnv(runtime.spec.containers[0] as Container, objects));
    assert.equal(config.modelRepository, '/mnt/models', 'KServe mounts the model storage at /mnt/models');
    assert.equal(config.buildDefaultModel, false, 'the KServe model storage is read-only');
  });
});
