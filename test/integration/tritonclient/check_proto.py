#!/usr/bin/env python3
"""Checks the server's proto/grpc_service.proto and proto/health.proto against the descriptors
generated into NVIDIA's tritonclient kit (tritonclient.grpc.service_pb2 from Triton's
grpc_service.proto, tritonclient.grpc.health_pb2 from its health.proto) and reports one JSON
line per check: {"call": ..., "ok": bool, "detail": ...}, then "N passed, N failed".
Exits 0 when every check passed, 1 when any failed, 2 on bad arguments.

    PYTHONPATH=/path/to/shared/clients/tritonclient /usr/bin/python3 check_proto.py [--node node]

Our side is read the way the server reads it: proto-descriptor.mjs (beside this script) loads
each .proto with @grpc/proto-loader and the protobufjs copy it uses, and prints every message,
enum and rpc as JSON. The kit's side is walked from its generated Python descriptors. Checked:
  - each file's package, and its licence header;
  - the rpcs: exactly EXPECTED_RPCS, each with the kit's request and response types, streaming
    flags and path; an rpc the kit does not declare (health's Watch) against the standard
    signature in STANDARD_RPCS;
  - every message (nested ones too) and enum the .proto declares: it must exist in the kit
    with the same fields, each with the same number, label (singular / repeated / map), type
    (scalar, or the full name of the message or enum; map<key,value> for maps) and oneof,
    the same oneofs, and the same enum values. Kit messages the .proto leaves out are listed
    (not a failure). Map entry message names are not compared: they never reach the wire.
"""
import argparse
import json
import os
import subprocess
import sys

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DESCRIBER = os.path.join(HERE, "proto-descriptor.mjs")

FILES = {
    "proto/grpc_service.proto": {
        "kit": "service_pb2",
        "licence": ("NVIDIA CORPORATION", "Redistribution and use in source and binary forms"),
    },
    "proto/health.proto": {
        "kit": "health_pb2",
        "licence": ("The gRPC Authors", "Licensed under the Apache License, Version 2.0"),
    },
}

# The rpcs each service must declare, no more and no fewer.
EXPECTED_RPCS = {
    ".inference.GRPCInferenceService": [
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
        "ModelInfer", "ModelStreamInfer", "ModelStatistics",
        "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
    ],
    ".grpc.health.v1.Health": ["Check", "Watch"],
}

# Signatures of rpcs the kit's descriptors lack (Triton's health.proto has Check only), from
# grpc/grpc-proto grpc/health/v1/health.proto.
STANDARD_RPCS = {
    ".grpc.health.v1.Health": {
        "Watch": {
            "input": ".grpc.health.v1.HealthCheckRequest",
            "output": ".grpc.health.v1.HealthCheckResponse",
            "client_streaming": False,
            "server_streaming": True,
            "path": "/grpc.health.v1.Health/Watch",
        },
    },
}

SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: "double", FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_INT64: "int64", FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_INT32: "int32", FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_FIXED32: "fixed32", FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_UINT32: "uint32", FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    FieldDescriptor.TYPE_SFIXED64: "sfixed64", FieldDescriptor.TYPE_SINT32: "sint32",
    FieldDescriptor.TYPE_SINT64: "sint64",
}


# -- the kit's side, in the same shape proto-descriptor.mjs prints ---------------------------
def is_map_entry(message):
    return message is not None and message.GetOptions().map_entry


def field_type(f):
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        if is_map_entry(f.message_type):
            key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            return f"map<{field_type(key)},{field_type(value)}>"
        return "." + f.message_type.full_name
    if f.type == FieldDescriptor.TYPE_ENUM:
        return "." + f.enum_type.full_name
    if f.type == FieldDescriptor.TYPE_GROUP:
        return "group:." + f.message_type.full_name
    return SCALARS[f.type]


def field_label(f):
    if f.type == FieldDescriptor.TYPE_MESSAGE and is_map_entry(f.message_type):
        return "map"
    return "repeated" if f.label == FieldDescriptor.LABEL_REPEATED else "optional"


def kit_shape(file_descriptor):
    messages, enums, services = {}, {}, {}

    def add_enum(e):
        enums["." + e.full_name] = {v.name: v.number for v in e.values}

    def add_message(m):
        messages["." + m.full_name] = {
            "fields": {
                f.name: {
                    "number": f.number,
                    "label": field_label(f),
                    "type": field_type(f),
                    "oneof": f.containing_oneof.name if f.containing_oneof is not None else None,
                }
                for f in m.fields
            },
            "oneofs": [o.name for o in m.oneofs],
        }
        for nested in m.nested_types:
            if not is_map_entry(nested):
                add_message(nested)
        for e in m.enum_types:
            add_enum(e)

    for m in file_descriptor.message_types_by_name.values():
        add_message(m)
    for e in file_descriptor.enum_types_by_name.values():
        add_enum(e)
    streaming = method_streaming(file_descriptor)
    for s in file_descriptor.services_by_name.values():
        services["." + s.full_name] = {
            m.name: {
                "input": "." + m.input_type.full_name,
                "output": "." + m.output_type.full_name,
                "client_streaming": streaming[(s.full_name, m.name)][0],
                "server_streaming": streaming[(s.full_name, m.name)][1],
                "path": f"/{s.full_name}/{m.name}",
            }
            for m in s.methods
        }
    return {"package": file_descriptor.package, "messages": messages, "enums": enums, "services": services}


def method_streaming(file_descriptor):
    """{(service full name, method): (client_streaming, server_streaming)}, read from the
    FileDescriptorProto: not every protobuf version's MethodDescriptor has these attributes."""
    proto = descriptor_pb2.FileDescriptorProto()
    file_descriptor.CopyToProto(proto)
    prefix = proto.package + "." if proto.package else ""
    return {(prefix + s.name, m.name): (m.client_streaming, m.server_streaming) for s in proto.service for m in s.method}


# -- comparison ------------------------------------------------------------------------------
def diff_dict(ours, theirs, what, source="kit"):
    """Differences between two {name: value} dicts, as readable strings."""
    out = []
    for k in sorted(set(ours) | set(theirs), key=str):
        if k not in theirs:
            out.append(f"{what} {k!r} is not in the {source}")
        elif k not in ours:
            out.append(f"{what} {k!r} ({source}: {theirs[k]}) is missing")
        elif ours[k] != theirs[k]:
            out.append(f"{what} {k!r}: ours {ours[k]}, {source} {theirs[k]}")
    return out


class Checker:
    def __init__(self):
        self.results = []

    def record(self, call, ok, detail):
        line = {"call": call, "ok": ok, "detail": detail}
        self.results.append(line)
        print(json.dumps(line, default=str), flush=True)

    def check(self, call, problems, detail_ok):
        if problems:
            self.record(call, False, problems)
        else:
            self.record(call, True, detail_ok)

    def compare_file(self, path, ours, kit, text):
        spec = FILES[path]
        self.check(f"package {path}", [] if ours["package"] == kit["package"] else
                   [f"package {ours['package']!r}, kit {kit['package']!r}"], ours["package"])
        missing = [s for s in spec["licence"] if s not in text[:3000]]
        self.check(f"licence header {path}", [f"header lacks {s!r}" for s in missing], "present")

        for service, methods in ours["services"].items():
            expected = EXPECTED_RPCS.get(service)
            if expected is None:
                self.record(f"rpcs {service}", False, f"unexpected service {service}; expected one of {sorted(EXPECTED_RPCS)}")
                continue
            extra = sorted(set(methods) - set(expected))
            absent = sorted(set(expected) - set(methods))
            self.check(f"rpcs {service}", ([f"not expected: {extra}"] if extra else []) + ([f"missing: {absent}"] if absent else []),
                       sorted(methods))
            kit_methods = kit["services"].get(service, {})
            standard = STANDARD_RPCS.get(service, {})
            for name, sig in methods.items():
                if name in kit_methods:
                    self.check(f"rpc {service}/{name}", diff_dict(sig, kit_methods[name], "attribute"), {"as in": "kit", **sig})
                elif name in standard:
                    self.check(f"rpc {service}/{name}", diff_dict(sig, standard[name], "attribute", "standard"), {"as in": "grpc-proto (not in kit)", **sig})
                else:
                    self.record(f"rpc {service}/{name}", False, "declared by neither the kit nor STANDARD_RPCS")
        for service in sorted(set(e for e in EXPECTED_RPCS if e.startswith("." + kit["package"] + ".")) - set(ours["services"])):
            self.record(f"rpcs {service}", False, f"service {service} is not declared")

        for name, message in ours["messages"].items():
            theirs = kit["messages"].get(name)
            if theirs is None:
                self.record(f"message {name}", False, "not in the kit")
                continue
            problems = diff_dict(message["fields"], theirs["fields"], "field")
            if message["oneofs"] != theirs["oneofs"]:
                problems.append(f"oneofs: ours {message['oneofs']}, kit {theirs['oneofs']}")
            self.check(f"message {name}", problems, {"fields": len(message["fields"])})
        for name, values in ours["enums"].items():
            theirs = kit["enums"].get(name)
            if theirs is None:
                self.record(f"enum {name}", False, "not in the kit")
                continue
            self.check(f"enum {name}", diff_dict(values, theirs, "value"), values)
        left_out = sorted(set(kit["messages"]) - set(ours["messages"]))
        self.record(f"left out {path}", True, {"kit messages not declared": left_out,
                                                "kit rpcs not declared": sorted(f"{s}/{m}" for s, ms in kit["services"].items()
                                                                                for m in ms if m not in ours["services"].get(s, {}))})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=REPO, help="the repository root (default: three folders up from this script)")
    p.add_argument("--node", default="node", help="the node executable")
    args = p.parse_args()

    from tritonclient.grpc import health_pb2, service_pb2
    kits = {"service_pb2": service_pb2, "health_pb2": health_pb2}

    checker = Checker()
    run = subprocess.run([args.node, DESCRIBER, *FILES], cwd=args.repo, capture_output=True, text=True)
    if run.returncode != 0:
        checker.record("load protos", False, {"exit": run.returncode, "stderr": run.stderr[-2000:]})
    else:
        ours_all = json.loads(run.stdout)["files"]
        checker.record("load protos", True, sorted(ours_all))
        for path, spec in FILES.items():
            module = kits[spec["kit"]]
            kit = kit_shape(module.DESCRIPTOR)
            with open(os.path.join(args.repo, path), encoding="utf-8") as f:
                text = f.read()
            checker.compare_file(path, ours_all[path], kit, text)

    failed = [r["call"] for r in checker.results if not r["ok"]]
    print(f"{len(checker.results) - len(failed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
