/**
 * Schema validation of rendered objects, by apiVersion and kind:
 * - Kubernetes kinds with the `kubernetes-models` validators, the ServiceMonitor with
 *   `@kubernetes-models/prometheus-operator`, the ScaledObject with `@kubernetes-models/keda`;
 * - KServe kinds with ajv against the CRD schemas vendored in test/fixtures/deploy/kserve.
 * Neither set of validators rejects unknown fields on its own (the models' schemas leave objects
 * open; the CRD schemas too), while the API server does (strict field validation, the default of
 * `kubectl apply`). So both are made strict here: see `unknownFields` and `closeObjectSchemas`.
 */
import { Ajv2019 as AjvClass } from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseYamlStream, readRepoText } from './repo.js';
import type { K8sObject } from './k8s.js';

/** Returns the validation errors of an object (empty when it is valid). */
export type Validator = (object: K8sObject) => string[];

/** A kubernetes-models class; each takes its own data interface, hence `never` here. */
type ModelClass = new (data: never) => { validate(): void };

/** Does the model's validator accept `data`? */
function modelAccepts(Model: ModelClass, data: object): boolean {
  try {
    new Model(data as never).validate();
    return true;
  } catch {
    return false;
  }
}

/**
 * Paths of the fields of `object` that the validator does not check, found by replacing each
 * field's value with a symbol (a value no JSON schema type admits) and seeing whether the
 * validator still accepts the object: a field it knows, it rejects with a symbol in it. The
 * object must be valid to begin with. Map entries (labels, ConfigMap data) count as known,
 * since their values are typed.
 */
export function unknownFields(object: object, accepts: (candidate: object) => boolean): string[] {
  const found: string[] = [];
  const probe = Symbol('not a JSON value');
  // One copy, each field swapped for the probe in turn and put back.
  const candidate = structuredClone(object);
  const walk = (node: unknown, path: (string | number)[]): void => {
    if (Array.isArray(node)) {
      node.forEach((item, index) => walk(item, [...path, index]));
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const value = record[key];
      record[key] = probe;
      const accepted = accepts(candidate);
      record[key] = value;
      if (accepted) found.push(`/${[...path, key].join('/')}`);
      else walk(value, [...path, key]);
    }
  };
  walk(candidate, []);
  return found;
}

function modelValidator(Model: ModelClass): Validator {
  return (object) => {
    try {
      new Model(object as never).validate();
    } catch (error) {
      return [(error as Error).message];
    }
    return unknownFields(object, (candidate) => modelAccepts(Model, candidate)).map((path) => `${path}: unknown field`);
  };
}

type JsonSchema = Record<string, unknown>;

/**
 * Makes every object schema that lists `properties` reject other properties, as the API server
 * does for a structural CRD schema under strict field validation; schemas that preserve unknown
 * fields or type their additional properties are left as they are.
 */
export function closeObjectSchemas(schema: JsonSchema): JsonSchema {
  const seen = new Set<object>();
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object' || seen.has(node)) return;
    seen.add(node);
    if (Array.isArray(node)) return node.forEach(visit);
    const s = node as JsonSchema;
    if (s.properties !== undefined && s.additionalProperties === undefined && s['x-kubernetes-preserve-unknown-fields'] !== true) {
      s.additionalProperties = false;
    }
    for (const key of ['properties', 'patternProperties', 'definitions', '$defs']) {
      const children = s[key];
      if (children && typeof children === 'object') Object.values(children).forEach(visit);
    }
    for (const key of ['items', 'additionalProperties', 'not', 'anyOf', 'allOf', 'oneOf']) visit(s[key]);
  };
  visit(schema);
  return schema;
}

const KUBERNETES_EXTENSIONS = [
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-validations',
];

/** An ajv validator for a vendored CRD schema file (test/fixtures/deploy/kserve/*.schema.yaml). */
export function crdSchemaValidator(fixture: string): Validator {
  const [file] = parseYamlStream(readRepoText('test', 'fixtures', 'deploy', 'kserve', fixture), fixture) as { openAPIV3Schema: JsonSchema }[];
  if (file?.openAPIV3Schema === undefined) throw new Error(`${fixture} holds no openAPIV3Schema`);
  const ajv = new AjvClass({ allErrors: true, strict: true, strictTypes: false });
  addFormats.default(ajv);
  ajv.addVocabulary(KUBERNETES_EXTENSIONS);
  const validate = ajv.compile(closeObjectSchemas(file.openAPIV3Schema));
  return (object) => {
    if (validate(object)) return [];
    return (validate.errors ?? []).map(
      (e) => `${e.instancePath || '/'} ${e.message ?? ''}${e.keyword === 'additionalProperties' ? ` (${String(e.params.additionalProperty)})` : ''}`,
    );
  };
}

let registry: Map<string, Validator> | undefined;

/** The validator for an apiVersion and kind, or `undefined` when the tests know none. */
export function validatorFor(apiVersion: string, kind: string): Validator | undefined {
  registry ??= new Map<string, Validator>([
    ['v1/Namespace', modelValidator(Namespace)],
    ['v1/ServiceAccount', modelValidator(ServiceAccount)],
    ['v1/ConfigMap', modelValidator(ConfigMap)],
    ['v1/Service', modelValidator(Service)],
    ['apps/v1/Deployment', modelValidator(Deployment)],
    ['policy/v1/PodDisruptionBudget', modelValidator(PodDisruptionBudget)],
    ['autoscaling/v2/HorizontalPodAutoscaler', modelValidator(HorizontalPodAutoscaler)],
    ['monitoring.coreos.com/v1/ServiceMonitor', modelValidator(ServiceMonitor)],
    ['keda.sh/v1alpha1/ScaledObject', modelValidator(ScaledObject)],
    ['serving.kserve.io/v1alpha1/ServingRuntime', crdSchemaValidator('servingruntime-v1alpha1.schema.yaml')],
    ['serving.kserve.io/v1beta1/InferenceService', crdSchemaValidator('inferenceservice-v1beta1.schema.yaml')],
  ]);
  return registry.get(`${apiVersion}/${kind}`);
}
