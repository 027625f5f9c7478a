/**
 * The manifests agree with the server: probe paths exist in the API, ports are the ones it
 * listens on, every environment variable is one it reads (with a value it accepts), autoscalers
 * query metrics it exports, and the objects point at each other correctly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { documentedGetPaths, exportedMetricNames, GRPC_HEALTH_SERVICE, serverConfig, serverEnvVars } from './helpers/app.js';
import { componentVariants, deployableKustomizations, kubectlMissing, renderKustomization, renderVariant } from './helpers/kustomize.js';
import { containerEnv, ofKind, oneOfKind, podTemplate, PROBE_KINDS, selects, type Container, type K8sObject, type ServiceSpec } from './helpers/k8s.js';
import { parseYamlStream, readRepoText } from './helpers/repo.js';

const OVERLAYS = () => deployableKustomizations().filter((f) => f.startsWith('deploy/overlays/'));

/**
 * The name of the container port that serves gRPC: `grpc` in our Deployment (the Service's
 * `grpc` port targets it); `h2c` in the ServingRuntime, the name KServe and Knative give a gRPC
 * (HTTP/2 cleartext) port.
 */
const GRPC_PORT_NAME = { Deployment: 'grpc', ServingRuntime: 'h2c' } as const;

/** Every server container of a rendering: Deployment containers and ServingRuntime containers. */
function serverContainers(objects: readonly K8sObject[]): { owner: string; kind: keyof typeof GRPC_PORT_NAME; container: Container }[] {
  const fromDeployments = ofKind(objects, 'Deployment').flatMap((d) =>
    podTemplate(d).spec.containers.map((container) => ({ owner: `Deployment/${d.metadata.name}`, kind: 'Deployment' as const, container })),
  );
  const fromRuntimes = ofKind(objects, 'ServingRuntime').flatMap((r) =>
    (r.spec as { containers: Container[] }).containers.map((container) => ({
      owner: `ServingRuntime/${r.metadata.name}`,
      kind: 'ServingRuntime' as const,
      container,
    })),
  );
  return [...fromDeployments, ...fromRuntimes];
}

/** PromQL metric names in a query: identifiers followed by a label matcher or a range. */
function metricNamesIn(query: string): string[] {
  return [...query.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g)]
    .map((m) => m[1] as string)
    .filter((name) => !['sum', 'avg', 'max', 'min', 'by', 'rate'].includes(name));
}

describe('manifests against the server', { skip: kubectlMissing() }, () => {
  /** Every rendering: the deployable kustomizations, the base, and each overlay with each optional component. */
  const everything = () => [
    ...[...deployableKustomizations(), 'deploy/base'].map((folder) => ({ folder, objects: renderKustomization(folder) })),
    ...componentVariants().map((variant) => ({ folder: variant.label, objects: renderVariant(variant) })),
  ];

  it('HTTP probe paths are GET routes documented in openapi.yaml', () => {
    const paths = documentedGetPaths();
    const missing: string[] = [];
    for (const { folder, objects } of everything()) {
      for (const { owner, container } of serverContainers(objects)) {
        for (const kind of PROBE_KINDS) {
          const probe = container[kind];
          if (probe?.grpc !== undefined && probe.httpGet === undefined) continue; // gRPC probes: next test
          const path = probe?.httpGet?.path;
          if (path === undefined) missing.push(`${folder} ${owner} ${kind}: no httpGet path`);
          else if (!paths.has(path)) missing.push(`${folder} ${owner} ${kind}: ${path} is not a GET path of openapi.yaml`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });

  it('probes and named ports point at the ports the server listens on: PORT, METRICS_PORT, GRPC_PORT', () => {
    for (const { folder, objects } of everything()) {
      for (const { owner, kind: ownerKind, container } of serverContainers(objects)) {
        const id = `${folder} ${owner}`;
        const config = serverConfig(containerEnv(container, objects));
        const portNumber = (port: number | string) => (typeof port === 'number' ? port : container.ports?.find((p) => p.name === port)?.containerPort);
        const grpcPortName = GRPC_PORT_NAME[ownerKind];
        for (const kind of PROBE_KINDS) {
          const probe = container[kind];
          if (probe?.grpc !== undefined) {
            assert.notEqual(config.grpcPort, 0, `${id} ${kind} is a gRPC probe, but GRPC_PORT=0 turns the gRPC server off`);
            assert.equal(typeof probe.grpc.port, 'number', `${id} ${kind}: a gRPC probe's port must be a number`);
            assert.equal(probe.grpc.port, config.grpcPort, `${id} ${kind} probes gRPC port ${probe.grpc.port}, the server listens on ${config.grpcPort}`);
            assert.equal(
              portNumber(grpcPortName),
              probe.grpc.port,
              `${id} ${kind}: gRPC probe port ${probe.grpc.port} is not the container port "${grpcPortName}"`,
            );
          } else {
            const port = probe?.httpGet?.port;
            assert.ok(port !== undefined, `${id} ${kind} has no port`);
            assert.equal(portNumber(port), config.port, `${id} ${kind} probes port ${port}, the server listens on ${config.port}`);
          }
        }
        assert.ok(
          container.ports?.some((p) => p.containerPort === config.port),
          `${id} does not declare the server port ${config.port}`,
        );
        if (config.metricsPort !== undefined) {
          assert.equal(container.ports?.find((p) => p.name === 'metrics')?.containerPort, config.metricsPort, `${id}: port "metrics" is not METRICS_PORT`);
        }
        if (config.grpcPort !== 0) {
          assert.equal(portNumber(grpcPortName), config.grpcPort, `${id}: container port "${grpcPortName}" is not GRPC_PORT (${config.grpcPort})`);
        } else {
          assert.equal(portNumber(grpcPortName), undefined, `${id}: declares a gRPC port "${grpcPortName}" with GRPC_PORT=0`);
        }
        const numbers = (container.ports ?? []).map((p) => p.containerPort);
        assert.deepEqual(
          numbers.filter((n, i) => numbers.indexOf(n) !== i),
          [],
          `${id}: a container port is declared twice`,
        );
      }
    }
  });

  it('gRPC probes ask the health service names the server answers: "" (readiness) for startup and readiness, "liveness" for liveness', () => {
    let grpcProbes = 0;
    for (const { folder, objects } of everything()) {
      for (const { owner, container } of serverContainers(objects)) {
        for (const kind of PROBE_KINDS) {
          const grpc = container[kind]?.grpc;
          if (grpc === undefined) continue;
          grpcProbes += 1;
          const want = kind === 'livenessProbe' ? GRPC_HEALTH_SERVICE.liveness : GRPC_HEALTH_SERVICE.readiness;
          assert.equal(grpc.service ?? '', want, `${folder} ${owner} ${kind} asks for gRPC health service "${grpc.service ?? ''}"`);
          assert.equal(container[kind]?.httpGet, undefined, `${folder} ${owner} ${kind}: a probe takes one handler`);
        }
      }
    }
    assert.ok(grpcProbes >= 3 * componentVariants().length, 'the grpc-probes component renders gRPC probes');
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
      const service = oneOfKind(objects, 'Service') as K8sObject & { spec: ServiceSpec };
      assert.ok(selects(service.spec.selector, podLabels), `${folder}: the Service does not select the pods`);
      assert.ok(
        selects((deployment.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels, podLabels),
        `${folder}: the Deployment selector does not match its template`,
      );
      const pdb = oneOfKind(objects, 'PodDisruptionBudget') as K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } };
      assert.ok(selects(pdb.spec.selector.matchLabels, podLabels), `${folder}: the PodDisruptionBudget does not select the pods`);
      const containerPortNames = new Set(pod.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
      for (const port of service.spec.ports) {
        assert.ok(
          typeof port.targetPort === 'string' && containerPortNames.has(port.targetPort),
          `${folder}: Service port ${port.name} targets ${port.targetPort}, not a named container port`,
        );
      }
      // gRPC: a port that meshes and gateways know to be gRPC, on the container port serving it.
      const server = pod.spec.containers[0] as Container;
      const config = serverConfig(containerEnv(server, objects));
      const grpc = service.spec.ports.find((p) => p.name === 'grpc');
      if (config.grpcPort === 0) {
        assert.equal(grpc, undefined, `${folder}: the Service has a grpc port but GRPC_PORT=0`);
      } else {
        assert.ok(grpc, `${folder}: the Service has no port named grpc`);
        assert.equal(grpc.appProtocol, 'grpc', `${folder}: Service port grpc has appProtocol ${grpc.appProtocol}`);
        assert.equal(grpc.protocol ?? 'TCP', 'TCP');
        const target = server.ports?.find((p) => p.name === grpc.targetPort);
        assert.ok(target, `${folder}: Service port grpc targets ${grpc.targetPort}, which no container port is named`);
        assert.equal(
          target.containerPort,
          config.grpcPort,
          `${folder}: Service port grpc reaches container port ${target.containerPort}, the server serves gRPC on GRPC_PORT ${config.grpcPort}`,
        );
        for (const port of service.spec.ports.filter((p) => p !== grpc)) {
          assert.notEqual(
            server.ports?.find((p) => p.name === port.targetPort)?.containerPort,
            config.grpcPort,
            `${folder}: Service port ${port.name} also reaches the gRPC port`,
          );
        }
      }
      const monitor = oneOfKind(objects, 'ServiceMonitor') as K8sObject & {
        spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
      };
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
    assert.equal(config.seedDefaultModel, false, 'the KServe model storage is read-only');
  });

  it('the ServingRuntime offers the Open Inference Protocol over HTTP (v2) and gRPC (grpc-v2), on the ports KServe expects', () => {
    const objects = renderKustomization('deploy/kserve');
    const runtime = oneOfKind(objects, 'ServingRuntime') as K8sObject & {
      spec: { protocolVersions: string[]; containers: Container[]; annotations?: Record<string, string> };
    };
    for (const protocol of ['v2', 'grpc-v2', 'v1']) assert.ok(runtime.spec.protocolVersions.includes(protocol), `protocolVersions lacks ${protocol}`);
    const container = runtime.spec.containers.find((c) => c.name === 'kserve-container');
    assert.ok(container, 'KServe serves the container named kserve-container');
    const config = serverConfig(containerEnv(container, objects));
    assert.notEqual(config.grpcPort, 0, 'grpc-v2 needs the gRPC server (GRPC_PORT not 0)');
    // KServe's raw-mode Service puts the first container port on port 80 (what its ingress and the
    // prometheus.kserve.io scrape use): HTTP must come first, gRPC after it on its own number.
    const [first, ...others] = container.ports ?? [];
    assert.deepEqual(
      { name: first?.name, containerPort: first?.containerPort },
      { name: 'http1', containerPort: config.port },
      'the first port is http1 on PORT',
    );
    assert.deepEqual(
      others.map((p) => ({ name: p.name, containerPort: p.containerPort })),
      [{ name: 'h2c', containerPort: config.grpcPort }],
      'then h2c on GRPC_PORT',
    );
    assert.equal(
      runtime.spec.annotations?.['prometheus.kserve.io/port'],
      String(config.metricsPort ?? config.port),
      'KServe scrapes /metrics where the server serves it',
    );
  });
});
