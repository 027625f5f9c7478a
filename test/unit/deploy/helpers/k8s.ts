/**
 * Just enough typing to walk rendered Kubernetes objects; `validators.ts` checks their shape
 * against the real schemas first, so the tests that use these helpers may trust it.
 */

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

/** A probe with the handlers the manifests use: an HTTP GET, or a native gRPC health check. */
export interface Probe {
  httpGet?: { path?: string; port: number | string };
  /** grpc.health.v1.Health/Check on `port` (a number: gRPC probes take no port names), asking for `service` ("" when unset). */
  grpc?: { port: number; service?: string };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  initialDelaySeconds?: number;
}

export interface Container {
  name: string;
  image?: string;
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface PodSpec {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  terminationGracePeriodSeconds?: number;
  volumes?: { name: string; emptyDir?: Record<string, unknown> }[];
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
}

export interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: PodSpec;
}

export interface ServicePort {
  name: string;
  port: number;
  targetPort: string | number;
  protocol?: string;
  appProtocol?: string;
}

export interface ServiceSpec {
  selector: Record<string, string>;
  ports: ServicePort[];
}

export const PROBE_KINDS = ['startupProbe', 'readinessProbe', 'livenessProbe'] as const;

export function ofKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

export function oneOfKind(objects: readonly K8sObject[], kind: string): K8sObject {
  const found = ofKind(objects, kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as K8sObject;
}

export function podTemplate(deployment: K8sObject): PodTemplate {
  return (deployment.spec as { template: PodTemplate }).template;
}

/** The container's environment as the server would see it: envFrom ConfigMaps, then env. */
export function containerEnv(container: Container, objects: readonly K8sObject[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const source of container.envFrom ?? []) {
    const name = source.configMapRef?.name;
    if (name === undefined) throw new Error(`container ${container.name}: only configMapRef envFrom is understood`);
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name);
    if (configMap === undefined) throw new Error(`container ${container.name}: ConfigMap ${name} is not in the rendered output`);
    for (const [key, value] of Object.entries(configMap.data ?? {})) env.set(key, value);
  }
  for (const { name, value } of container.env ?? []) env.set(name, value ?? '');
  return env;
}

/** Seconds the preStop hook holds the container before SIGTERM (`sleep N` or the sleep action). */
export function preStopSeconds(container: Container): number {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep) return preStop.sleep.seconds;
  const command = preStop?.exec?.command ?? [];
  const sleep = command.findIndex((part) => /(^|\/)sleep$/.test(part));
  if (sleep >= 0 && command[sleep + 1] !== undefined) return Number(command[sleep + 1]);
  return 0;
}

/** A Kubernetes CPU quantity ("2", "500m", 1.5) in CPUs. */
export function cpuQuantity(value: string | number | undefined): number {
  if (value === undefined) return NaN;
  const text = String(value);
  return text.endsWith('m') ? Number(text.slice(0, -1)) / 1000 : Number(text);
}

const BINARY_SUFFIXES: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL_SUFFIXES: Record<string, number> = { k: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** A Kubernetes memory quantity ("2Gi", "512M", 1024) in bytes. */
export function memoryQuantity(value: string | number | undefined): number {
  if (value === undefined) return NaN;
  const match = /^(\d+(?:\.\d+)?)([KMGT]i|[kMGT])?$/.exec(String(value));
  if (!match) return NaN;
  const suffix = match[2];
  const scale = suffix === undefined ? 1 : (BINARY_SUFFIXES[suffix] ?? DECIMAL_SUFFIXES[suffix] ?? NaN);
  return Number(match[1]) * scale;
}

/** Does `selector` (matchLabels) select an object labelled `labels`? */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}
