#!/usr/bin/env node
/**
 * Prints, as one JSON object, the wire-relevant shape of .proto files as the server will see
 * them: loaded by @grpc/proto-loader (services: paths and streaming flags, what @grpc/grpc-js
 * serves) and by the protobufjs copy proto-loader itself uses (messages, enums).
 * check_proto.py compares this with the tritonclient kit's generated descriptors.
 *
 *     node proto-descriptor.mjs proto/grpc_service.proto proto/health.proto
 *
 * Output: {"files": {<path>: {"package", "messages", "enums", "services"}}}, where
 *   messages: {".pkg.Msg": {"fields": {<name>: {"number", "label", "type", "oneof"}}, "oneofs": [...]}}
 *     label: "optional" (proto3 singular), "repeated" or "map";
 *     type: a scalar name ("int64", "bytes", ...), a full name (".pkg.Msg") or "map<K,V>";
 *     map entry messages are not listed (the map field's type says all there is).
 *   enums: {".pkg.Msg.Enum": {<VALUE>: <number>}}
 *   services: {".pkg.Svc": {<Method>: {"input", "output", "client_streaming", "server_streaming", "path"}}}
 * Each file is loaded on its own, so a file that needs another one it does not import fails.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const require = createRequire(import.meta.url);
const protoLoader = require('@grpc/proto-loader');
// The protobufjs that proto-loader depends on (it may differ from the top-level one).
const protobuf = createRequire(require.resolve('@grpc/proto-loader'))('protobufjs');

const typeName = (field) => {
  const resolved = field.resolvedType;
  const value = resolved ? resolved.fullName : field.type;
  return field.map ? `map<${field.keyType},${value}>` : value;
};

function describe(file) {
  const root = new protobuf.Root();
  root.loadSync(file, { keepCase: true });
  root.resolveAll();
  const messages = {};
  const enums = {};
  const services = {};
  const packages = new Set();
  // Where a top-level definition sits: its package ('' for none).
  const packageOf = (item) => (item.parent === root ? '' : item.parent.fullName.slice(1));
  const walk = (ns) => {
    for (const item of ns.nestedArray) {
      if (item instanceof protobuf.Type) {
        if (!(ns instanceof protobuf.Type)) packages.add(packageOf(item));
        const fields = {};
        for (const f of item.fieldsArray) {
          fields[f.name] = {
            number: f.id,
            label: f.map ? 'map' : f.repeated ? 'repeated' : 'optional',
            type: typeName(f),
            oneof: f.partOf ? f.partOf.name : null,
          };
        }
        messages[item.fullName] = { fields, oneofs: item.oneofsArray.map((o) => o.name) };
      } else if (item instanceof protobuf.Enum) {
        if (!(ns instanceof protobuf.Type)) packages.add(packageOf(item));
        enums[item.fullName] = { ...item.values };
      } else if (item instanceof protobuf.Service) {
        packages.add(packageOf(item));
        const methods = {};
        for (const m of item.methodsArray) {
          methods[m.name] = {
            input: m.resolvedRequestType.fullName,
            output: m.resolvedResponseType.fullName,
            client_streaming: Boolean(m.requestStream),
            server_streaming: Boolean(m.responseStream),
            path: null,
          };
        }
        services[item.fullName] = methods;
      }
      if (item.nestedArray) walk(item);
    }
  };
  walk(root);

  // What @grpc/grpc-js will be given: the method paths and streaming flags from proto-loader.
  const definition = protoLoader.loadSync(file, { keepCase: true });
  for (const [serviceName, methods] of Object.entries(services)) {
    const loaded = definition[serviceName.slice(1)];
    if (!loaded) throw new Error(`proto-loader did not produce service ${serviceName}`);
    for (const [name, m] of Object.entries(methods)) {
      const def = loaded[name];
      if (!def) throw new Error(`proto-loader did not produce ${serviceName}.${name}`);
      if (def.requestStream !== m.client_streaming || def.responseStream !== m.server_streaming) {
        throw new Error(`proto-loader and protobufjs disagree on the streaming of ${serviceName}.${name}`);
      }
      m.path = def.path;
    }
  }
  return { package: [...packages].sort().join(','), messages, enums, services };
}

const files = {};
for (const arg of process.argv.slice(2)) files[arg] = describe(resolve(arg));
console.log(JSON.stringify({ files }));
