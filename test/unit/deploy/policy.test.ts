/**
 * The production posture of every server container: restricted security context, resources
 * that make the CPU quota meaningful, writable paths only where the server writes, probes sized
 * for startup, and a termination grace period that covers the server's whole drain.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { probeAsks, SERVER_GRACE_MARGIN_MS, serverConfig } from './helpers/app.js';
import { componentVariants, deployableKustomizations, kubectlMissing, renderKustomization, renderVariant } from './helpers/kustomize.js';
import {
  containerEnv,
  cpuQuantity,
  memoryQuantity,
  ofKind,
  oneOfKind,
  podTemplate,
  preStopSeconds,
  type Container,
  type K8sObject,
  type PodSpec,
} from './helpers/k8s.js';
import { imageUser } from './helpers/dockerfile.js';

/**
 * Least time a startup probe must allow for model load + warm-up, copying the default model in
 * first when the repository is empty. scripts/container-check.sh measured that whole path at
 * 0.7 s on the 2-CPU development machine (deploy/README.md); the floor leaves room for slow or
 * throttled nodes, bigger models (ResNet-20's model.onnx is 1 MB, an ImageNet ResNet-50's about
 * 100 MB) and slow volumes, and costs a healthy pod nothing (the probe passes as soon as the
 * server is ready).
 */
const MIN_STARTUP_SECONDS = 180;
/** Slack between the server's own hard deadline after SIGTERM and the kubelet's SIGKILL. */
const MIN_EXIT_SLACK_SECONDS = 5;

interface Workload {
  id: string;
  pod: Partial<PodSpec>;
  container: Container;
  objects: K8sObject[];
  /** terminationGracePeriodSeconds in force (the Kubernetes default is 30). */
  graceSeconds: number;
}

/** Server containers of every deployable kustomization, and of every overlay with each optional component. */
function workloads(): Workload[] {
  const found: Workload[] = [];
  const renderings = [
    ...deployableKustomizations().map((folder) => ({ folder, objects: renderKustomization(folder) })),
    ...componentVariants().map((variant) => ({ folder: variant.label, objects: renderVariant(variant) })),
  ];
  for (const { folder, objects } of renderings) {
    for (const deployment of ofKind(objects, 'Deployment')) {
      const pod = podTemplate(deployment).spec;
      for (const container of pod.containers) {
        found.push({
          id: `${folder} Deployment/${deployment.metadata.name}/${container.name}`,
          pod,
          container,
          objects,
          graceSeconds: pod.terminationGracePeriodSeconds ?? 30,
        });
      }
    }
    for (const runtime of ofKind(objects, 'ServingRuntime')) {
      const spec = runtime.spec as { containers: Container[] };
      // KServe builds the pod: its grace period comes from the InferenceService's predictor.
      const grace = ofKind(objects, 'InferenceService').map(
        (s) => (s.spec as { predictor: { terminationGracePeriodSeconds?: number } }).predictor.terminationGracePeriodSeconds ?? 30,
      );
      for (const container of spec.containers) {
        found.push({
          id: `${folder} ServingRuntime/${runtime.metadata.name}/${container.name}`,
          pod: {},
          container,
          objects,
          graceSeconds: Math.min(...grace),
        });
      }
    }
  }
  return found;
}

describe('server containers in the manifests', { skip: kubectlMissing() }, () => {
  it('cover every overlay and KServe, and every overlay with each optional component', () => {
    assert.ok(workloads().length >= deployableKustomizations().length + componentVariants().length);
  });

  it('run as non-root, without privilege escalation, capabilities or a writable root filesystem, under RuntimeDefault seccomp', () => {
    const uid = imageUser('Dockerfile').uid;
    for (const { id, pod, container } of workloads()) {
      const sc = container.securityContext ?? {};
      assert.equal(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, true, `${id}: runAsNonRoot`);
      assert.equal(sc.allowPrivilegeEscalation, false, `${id}: allowPrivilegeEscalation`);
      assert.equal(sc.readOnlyRootFilesystem, true, `${id}: readOnlyRootFilesystem`);
      assert.ok(sc.capabilities?.drop?.includes('ALL'), `${id}: capabilities.drop ALL`);
      assert.deepEqual(sc.capabilities?.add ?? [], [], `${id}: no added capabilities`);
      assert.equal((sc.seccompProfile ?? pod.securityContext?.seccompProfile)?.type, 'RuntimeDefault', `${id}: seccomp`);
      const runAsUser = sc.runAsUser ?? pod.securityContext?.runAsUser;
      if (runAsUser !== undefined) assert.equal(runAsUser, uid, `${id}: runAsUser differs from the image's USER`);
    }
  });

  it('request and limit CPU and memory, with limits no lower than requests', () => {
    for (const { id, container } of workloads()) {
      const { requests = {}, limits = {} } = container.resources ?? {};
      for (const [name, parse] of [
        ['cpu', cpuQuantity],
        ['memory', memoryQuantity],
      ] as const) {
        assert.ok(parse(requests[name]) > 0, `${id}: requests.${name}`);
        assert.ok(parse(limits[name]) >= parse(requests[name]), `${id}: limits.${name} below requests.${name}`);
      }
    }
  });

  it('give CPU pods a CPU limit equal to the request, so that the quota the server sizes its threads by is what the pod is promised', () => {
    for (const { id, container, objects } of workloads()) {
      if (serverConfig(containerEnv(container, objects)).executionProvider !== 'cpu') continue;
      const { requests = {}, limits = {} } = container.resources ?? {};
      assert.equal(cpuQuantity(limits.cpu), cpuQuantity(requests.cpu), id);
      assert.equal(limits['nvidia.com/gpu'], undefined, `${id}: a CPU pod asks for a GPU`);
    }
  });

  it('mount writable volumes where the server writes: /tmp, and the model repository when it copies the default model in', () => {
    for (const { id, pod, container, objects } of workloads()) {
      const config = serverConfig(containerEnv(container, objects));
      const mounts = container.volumeMounts ?? [];
      assert.ok(
        mounts.some((m) => m.mountPath === '/tmp' && m.readOnly !== true),
        `${id}: /tmp`,
      );
      if (config.seedDefaultModel) {
        const mount = mounts.find((m) => m.mountPath === config.modelRepository);
        assert.ok(mount && mount.readOnly !== true, `${id}: MODEL_REPOSITORY ${config.modelRepository} must be a writable mount to receive the default model`);
        const volume = pod.volumes?.find((v) => v.name === mount.name);
        assert.ok(volume?.emptyDir, `${id}: the model repository should be an emptyDir (or set SEED_DEFAULT_MODEL=false)`);
      }
    }
  });

  it('probe readiness (/v2/health/ready or gRPC health "") and liveness (/v2/health/live or gRPC health "liveness"), with a startup probe long enough for model load and warm-up', () => {
    for (const { id, container } of workloads()) {
      assert.equal(probeAsks(container.readinessProbe), 'readiness', id);
      assert.equal(probeAsks(container.livenessProbe), 'liveness', id);
      assert.equal(probeAsks(container.startupProbe), 'readiness', `${id}: startup ends when the model is loaded and warm`);
      const startup = container.startupProbe ?? {};
      const budget = (startup.initialDelaySeconds ?? 0) + (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3);
      assert.ok(budget >= MIN_STARTUP_SECONDS, `${id}: startup probe allows ${budget} s, want at least ${MIN_STARTUP_SECONDS} s`);
      const liveness = container.livenessProbe ?? {};
      assert.ok((liveness.periodSeconds ?? 10) * (liveness.failureThreshold ?? 3) >= 20, `${id}: liveness restarts a pod after less than 20 s of silence`);
    }
  });

  it('give the pod a termination grace period that covers preStop + SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS and the server margin', () => {
    for (const { id, container, objects, graceSeconds } of workloads()) {
      const config = serverConfig(containerEnv(container, objects));
      const preStop = preStopSeconds(container);
      assert.ok(preStop > 0, `${id}: a preStop pause lets endpoints update before SIGTERM`);
      const serverDeadline = preStop + (config.shutdownDelayMs + config.shutdownTimeoutMs + SERVER_GRACE_MARGIN_MS) / 1000;
      assert.ok(
        graceSeconds >= serverDeadline + MIN_EXIT_SLACK_SECONDS,
        `${id}: terminationGracePeriodSeconds ${graceSeconds} < preStop ${preStop} s + delay ${config.shutdownDelayMs} ms + drain ${config.shutdownTimeoutMs} ms + margin ${SERVER_GRACE_MARGIN_MS} ms + ${MIN_EXIT_SLACK_SECONDS} s`,
      );
      assert.ok(config.shutdownTimeoutMs >= config.requestTimeoutMs, `${id}: a request admitted just before the drain may need REQUEST_TIMEOUT_MS to finish`);
    }
  });
});

describe('overlay specifics', { skip: kubectlMissing() }, () => {
  it('gpu: one NVIDIA GPU per pod, GPU nodes only, the CUDA image and provider', () => {
    const objects = renderKustomization('deploy/overlays/gpu');
    const pod = podTemplate(oneOfKind(objects, 'Deployment')).spec;
    const container = pod.containers[0] as Container;
    assert.ok(Number(container.resources?.limits?.['nvidia.com/gpu']) >= 1, 'limits nvidia.com/gpu');
    assert.ok(
      pod.tolerations?.some((t) => t.key === 'nvidia.com/gpu' && t.effect === 'NoSchedule'),
      'tolerates the GPU taint',
    );
    assert.ok(Object.keys(pod.nodeSelector ?? {}).length > 0, 'selects GPU nodes');
    assert.match(container.image ?? '', /-cuda[:@]/);
    const config = serverConfig(containerEnv(container, objects));
    assert.equal(config.executionProvider, 'cuda');
    assert.ok((config.batchMaxSize ?? 0) > 8, 'sets BATCH_MAX_SIZE above the CPU default of 8');
  });

  it('cpu overlays: the CPU image, on any node', () => {
    for (const folder of ['deploy/overlays/cpu', 'deploy/overlays/cpu-keda']) {
      const pod = podTemplate(oneOfKind(renderKustomization(folder), 'Deployment')).spec;
      assert.doesNotMatch(pod.containers[0]?.image ?? '', /cuda/, folder);
      assert.equal(pod.tolerations, undefined, folder);
    }
  });

  it('rollouts never take a pod away before its replacement is ready, and disruptions take one at a time', () => {
    for (const folder of deployableKustomizations().filter((f) => f.startsWith('deploy/overlays/'))) {
      const objects = renderKustomization(folder);
      const strategy = (oneOfKind(objects, 'Deployment').spec as { strategy: { rollingUpdate: { maxUnavailable: number | string } } }).strategy;
      assert.equal(strategy.rollingUpdate.maxUnavailable, 0, folder);
      assert.equal((oneOfKind(objects, 'PodDisruptionBudget').spec as { maxUnavailable: number }).maxUnavailable, 1, folder);
    }
  });

  it('cpu: the HorizontalPodAutoscaler scales on CPU utilisation from at least two replicas', () => {
    const hpa = oneOfKind(renderKustomization('deploy/overlays/cpu'), 'HorizontalPodAutoscaler').spec as {
      minReplicas: number;
      maxReplicas: number;
      metrics: { type: string; resource?: { name: string; target: { type: string } } }[];
    };
    assert.ok(hpa.minReplicas >= 2 && hpa.maxReplicas > hpa.minReplicas);
    assert.ok(hpa.metrics.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu' && m.resource.target.type === 'Utilization'));
  });
});
