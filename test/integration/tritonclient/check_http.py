#!/usr/bin/env python3
"""Runs NVIDIA's unmodified Python `tritonclient` (HTTP, default modes) against a running
server and reports one JSON line per call: {"call": ..., "ok": bool, "detail": ...}.
Exits 0 when every call passed, 1 when any failed, 2 on bad arguments.

Run it with Debian's python and the client kit on PYTHONPATH, from any folder other than
the kit itself:

    PYTHONPATH=/path/to/shared/clients/tritonclient /usr/bin/python3 check_http.py \
        --url 127.0.0.1:8080 --model resnet20 --png .../images/photos/chelsea.png \
        [--expected-logits logits.npy|logits.json] [--dump-input x.f32]

The FP32 input (unless --input-tensor gives one) is, for flat index i of the [1, 3, 32, 32]
NCHW tensor, channel c = i // 1024:
    x[i] = float32((((i * 7919) % 256) / 255 - MEAN[c]) / STD[c])
computed in double precision and rounded once to float32, with MEAN = (0.485, 0.456, 0.406)
and STD = (0.229, 0.224, 0.225). --dump-input writes exactly that tensor (little-endian float32,
or .npy / .json by extension) so a caller can run it through onnxruntime itself and pass the
result back with --expected-logits (compared with --tolerance, 1e-5 by default).
"""
import argparse
import asyncio
import base64
import json
import sys

import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT = "input"
DEFAULT_OUTPUT = "logits"
DECODE_FALLBACK = "an exception occurred in the client while decoding the response"


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


def default_tensor():
    i = np.arange(3 * 32 * 32, dtype=np.float64)
    c = (i // 1024).astype(np.int64)
    v = ((i * 7919) % 256) / 255.0
    x = (v - np.array(MEAN)[c]) / np.array(STD)[c]
    return x.astype(np.float32).reshape(1, 3, 32, 32)


def load_array(path, dtype):
    if path.endswith(".npy"):
        return np.load(path).astype(dtype)
    if path.endswith(".json"):
        with open(path) as f:
            return np.array(json.load(f), dtype=dtype)
    return np.fromfile(path, dtype="<f4").astype(dtype)


def save_tensor(path, x):
    if path.endswith(".npy"):
        np.save(path, x)
    elif path.endswith(".json"):
        with open(path, "w") as f:
            json.dump(x.reshape(-1).astype(float).tolist(), f)
    else:
        x.astype("<f4").tofile(path)


def server_error(e):
    """(status, message) of a client exception, and whether the server's own text reached it."""
    msg = e.message() if isinstance(e, InferenceServerException) else str(e)
    status = e.status() if isinstance(e, InferenceServerException) else None
    return status, msg


class CheckerBase:
    """What the HTTP and gRPC checkers share: the inputs from the command line, and one JSON line per call."""

    def __init__(self, args):
        self.args = args
        self.results = []
        self.input_name = DEFAULT_INPUT
        self.output_name = DEFAULT_OUTPUT
        self.version = args.model_version
        self.x = load_array(args.input_tensor, np.float32).reshape(1, 3, 32, 32) if args.input_tensor else default_tensor()
        self.expected = None
        if args.expected_logits:
            self.expected = load_array(args.expected_logits, np.float64).reshape(-1)
        with open(args.png, "rb") as f:
            self.png = f.read()
        self.skip = set(s for s in (args.skip or "").split(",") if s)
        self.only = set(s for s in (getattr(args, "only", None) or "").split(",") if s)

    # -- reporting ------------------------------------------------------------------------
    def record(self, call, ok, detail):
        line = {"call": call, "ok": ok, "detail": detail}
        self.results.append(line)
        print(json.dumps(line, default=str), flush=True)

    def skipped(self, call):
        return call in self.skip or (self.only and call not in self.only)

    def failure(self, e):
        """The detail recorded for a call that raised `e`."""
        if isinstance(e, CheckFailed):
            return str(e)
        if isinstance(e, InferenceServerException):
            status, msg = server_error(e)
            return {"exception": "InferenceServerException", "status": status, "message": (msg or "")[:500]}
        return {"exception": type(e).__name__, "message": str(e)[:500]}

    def run(self, call, fn):
        if self.skipped(call):
            return
        try:
            detail = fn()
        except Exception as e:  # noqa: BLE001 - any failure of the client is a failed call
            self.record(call, False, self.failure(e))
        else:
            self.record(call, True, detail)


class Checker(CheckerBase):
    async def arun(self, call, coro_fn):
        if self.skipped(call):
            return
        try:
            detail = await coro_fn()
        except Exception as e:  # noqa: BLE001 - any failure of the client is a failed call
            self.record(call, False, self.failure(e))
        else:
            self.record(call, True, detail)

    # -- inputs and outputs ---------------------------------------------------------------
    def fp32_input(self, mod, binary=True, x=None):
        x = self.x if x is None else x
        inp = mod.InferInput(self.input_name, list(x.shape), "FP32")
        if binary:
            inp.set_data_from_numpy(x)  # the client's default: binary_data=True
        else:
            inp.set_data_from_numpy(x, binary_data=False)
        return inp

    def png_input(self, mod, binary=True):
        inp = mod.InferInput(self.input_name, [1], "BYTES")
        if binary:
            inp.set_data_from_numpy(np.array([self.png], dtype=np.object_))
        else:
            # JSON can carry only UTF-8 text, and the client refuses raw PNG bytes with
            # binary_data=False, so the image goes base64-encoded in the JSON "data".
            inp.set_data_from_numpy(np.array([base64.b64encode(self.png)], dtype=np.object_), binary_data=False)
        return inp

    def check_logits(self, result, want_binary, compare=True):
        out = result.get_output(self.output_name)
        require(out is not None, f"response has no output {self.output_name!r}: {json.dumps(result.get_response())[:300]}")
        params = out.get("parameters") or {}
        is_binary = "binary_data_size" in params
        require(out.get("datatype") == "FP32", f"output datatype {out.get('datatype')!r}, expected 'FP32'")
        if want_binary is not None:
            require(is_binary == want_binary,
                    f"output came as {'binary' if is_binary else 'JSON data'}, the request asked for {'binary' if want_binary else 'JSON data'}")
        logits = result.as_numpy(self.output_name)
        require(logits is not None, "as_numpy returned None")
        require(list(logits.shape) == [1, 10], f"logits shape {list(logits.shape)}, expected [1, 10]")
        require(logits.dtype == np.float32, f"logits dtype {logits.dtype}, expected float32")
        detail = {"binary": is_binary, "argmax": int(np.argmax(logits))}
        if compare and self.expected is not None:
            diff = float(np.max(np.abs(logits.reshape(-1).astype(np.float64) - self.expected)))
            detail["max_abs_diff"] = diff
            require(diff <= self.args.tolerance, f"logits differ from expected by {diff} > {self.args.tolerance}: {logits.reshape(-1).tolist()}")
        return logits, detail

    def check_cat(self, result, want_binary):
        logits, detail = self.check_logits(result, want_binary, compare=False)
        require(int(np.argmax(logits)) == self.args.expected_index,
                f"argmax {int(np.argmax(logits))}, expected {self.args.expected_index} ({self.args.expected_label})")
        e = np.exp(logits.reshape(-1).astype(np.float64) - logits.max())
        detail["p"] = round(float(e[self.args.expected_index] / e.sum()), 6)
        return detail

    def check_classification(self, result, count, want_binary):
        out = result.get_output(self.output_name)
        require(out is not None, f"response has no output {self.output_name!r}")
        require(out.get("datatype") == "BYTES", f"classification output datatype {out.get('datatype')!r}, expected 'BYTES'")
        params = out.get("parameters") or {}
        is_binary = "binary_data_size" in params
        require(is_binary == want_binary,
                f"classification came as {'binary' if is_binary else 'JSON data'}, the request asked for {'binary' if want_binary else 'JSON data'}")
        arr = result.as_numpy(self.output_name)
        require(list(arr.shape) == [1, count], f"classification shape {list(arr.shape)}, expected [1, {count}]")
        entries = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]
        parsed = []
        for s in entries:
            parts = s.split(":", 2)
            require(len(parts) >= 2, f"classification entry {s!r} is not '<value>:<index>[:<label>]'")
            parsed.append((float(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else None))
        require(parsed[0][1] == self.args.expected_index and parsed[0][2] == self.args.expected_label,
                f"first classification {entries[0]!r}, expected index {self.args.expected_index} label {self.args.expected_label!r}")
        require(all(parsed[i][0] >= parsed[i + 1][0] for i in range(len(parsed) - 1)), f"classification values not descending: {entries}")
        return {"binary": is_binary, "entries": entries}

    def expect_error(self, fn, status, must_mention=None):
        try:
            fn()
        except InferenceServerException as e:
            got_status, msg = server_error(e)
            require(got_status == str(status), f"status {got_status}, expected {status}; message: {msg[:300]}")
            require(not msg.startswith(DECODE_FALLBACK) and msg != "client received an empty response from the server.",
                    f"the server's error text did not reach the client as JSON {{\"error\": ...}}: {msg[:300]}")
            if must_mention is not None:
                require(must_mention in msg, f"message {msg[:300]!r} does not mention {must_mention!r}")
            return {"status": got_status, "message": msg[:300]}
        raise CheckFailed(f"expected an error with status {status}, the call succeeded")

    # -- the calls --------------------------------------------------------------------------
    def sync_checks(self):
        a, m = self.args, self.args.model
        c = httpclient.InferenceServerClient(a.url)
        try:
            self.run_sync(c, m)
        finally:
            c.close()

    def run_sync(self, c, m):
        def live():
            require(c.is_server_live() is True, "is_server_live() returned False")
            return "live"

        def ready():
            require(c.is_server_ready() is True, "is_server_ready() returned False")
            return "ready"

        def server_metadata():
            md = c.get_server_metadata()
            require(isinstance(md, dict), f"not a JSON object: {md!r}")
            missing = [k for k in ("name", "version", "extensions") if k not in md]
            require(not missing, f"server metadata lacks {missing}: {md}")
            return md

        def model_metadata(version=""):
            def f():
                md = c.get_model_metadata(m, model_version=version)
                require(md.get("name") == m, f"metadata name {md.get('name')!r}, expected {m!r}")
                inputs, outputs = md.get("inputs") or [], md.get("outputs") or []
                require(len(inputs) >= 1 and len(outputs) >= 1, f"metadata lacks inputs/outputs: {md}")
                self.input_name, self.output_name = inputs[0]["name"], outputs[0]["name"]
                versions = md.get("versions") or []
                return {"inputs": inputs, "outputs": outputs, "versions": versions}
            return f

        def model_ready(version):
            def f():
                require(c.is_model_ready(m, model_version=version) is True, f"is_model_ready({m!r}, model_version={version!r}) returned False")
                return "ready"
            return f

        def infer(inputs_fn, outputs=None, want_binary=True, check=None, **kw):
            def f():
                r = c.infer(m, [inputs_fn()], outputs=outputs, **kw)
                if check is not None:
                    return check(r)
                return self.check_logits(r, want_binary)[1]
            return f

        out = lambda **kw: [httpclient.InferRequestedOutput(self.output_name, **kw)]  # noqa: E731

        self.run("server_live", live)
        self.run("server_ready", ready)
        self.run("server_metadata", server_metadata)
        self.run("model_metadata", model_metadata())
        self.run("model_metadata_version", model_metadata(self.version))
        self.run("model_ready", model_ready(""))
        self.run("model_ready_version", model_ready(self.version))
        self.run("infer_fp32_binary", infer(lambda: self.fp32_input(httpclient)))
        self.run("infer_fp32_json", infer(lambda: self.fp32_input(httpclient, binary=False)))
        self.run("infer_output_binary", infer(lambda: self.fp32_input(httpclient), outputs=out()))
        self.run("infer_output_json", infer(lambda: self.fp32_input(httpclient), outputs=out(binary_data=False), want_binary=False))
        self.run("infer_json_in_json_out", infer(lambda: self.fp32_input(httpclient, binary=False), outputs=out(binary_data=False), want_binary=False))
        self.run("infer_model_version", infer(lambda: self.fp32_input(httpclient), model_version=self.version))
        self.run("infer_bytes_png_binary", infer(lambda: self.png_input(httpclient), check=lambda r: self.check_cat(r, True)))
        self.run("infer_bytes_png_base64_json", infer(lambda: self.png_input(httpclient, binary=False), check=lambda r: self.check_cat(r, True)))
        self.run("infer_classification", infer(lambda: self.png_input(httpclient), outputs=out(class_count=3),
                                               check=lambda r: self.check_classification(r, 3, True)))
        self.run("infer_classification_json", infer(lambda: self.png_input(httpclient), outputs=out(class_count=3, binary_data=False),
                                                    check=lambda r: self.check_classification(r, 3, False)))
        self.run("infer_gzip_request", infer(lambda: self.fp32_input(httpclient), request_compression_algorithm="gzip"))
        self.run("infer_gzip_response", infer(lambda: self.fp32_input(httpclient), response_compression_algorithm="gzip"))
        self.run("unknown_model", lambda: self.expect_error(
            lambda: c.infer("no-such-model", [self.fp32_input(httpclient)]), 404, must_mention="no-such-model"))
        self.run("unknown_model_ready", lambda: (require(c.is_model_ready("no-such-model") is False, "is_model_ready returned True"), "not ready")[1])
        wrong = np.zeros((1, 3, 16, 16), dtype=np.float32)
        self.run("wrong_shape", lambda: self.expect_error(lambda: c.infer(m, [self.fp32_input(httpclient, x=wrong)]), 400))

        def stats():
            s = c.get_inference_statistics(m)
            require(isinstance(s.get("model_stats"), list), f"no model_stats list: {json.dumps(s)[:300]}")
            names = [e.get("name") for e in s["model_stats"]]
            require(m in names, f"model_stats has no entry for {m!r}: {names}")
            entry = s["model_stats"][names.index(m)]
            return {"inference_count": entry.get("inference_count"), "success": (entry.get("inference_stats") or {}).get("success")}
        self.run("inference_statistics", stats)

    async def aio_checks(self):
        a, m = self.args, self.args.model
        c = aioclient.InferenceServerClient(a.url)
        try:
            async def ready():
                require(await c.is_server_ready() is True, "is_server_ready() returned False")
                return "ready"

            async def server_metadata():
                md = await c.get_server_metadata()
                require(isinstance(md, dict) and "name" in md, f"bad server metadata: {md!r}")
                return {"name": md.get("name")}

            async def model_metadata():
                md = await c.get_model_metadata(m)
                require(md.get("name") == m, f"metadata name {md.get('name')!r}")
                return {"name": md.get("name")}

            async def model_ready():
                require(await c.is_model_ready(m, model_version=self.version) is True, "is_model_ready returned False")
                return "ready"

            async def infer_binary():
                r = await c.infer(m, [self.fp32_input(aioclient)])
                return self.check_logits(r, True)[1]

            async def infer_json():
                r = await c.infer(m, [self.fp32_input(aioclient, binary=False)],
                                  outputs=[aioclient.InferRequestedOutput(self.output_name, binary_data=False)])
                return self.check_logits(r, False)[1]

            async def infer_png():
                r = await c.infer(m, [self.png_input(aioclient)])
                return self.check_cat(r, True)

            async def unknown_model():
                try:
                    await c.infer("no-such-model", [self.fp32_input(aioclient)])
                except InferenceServerException as e:
                    status, msg = server_error(e)
                    require(status == "404", f"status {status}, expected 404: {msg[:300]}")
                    require(not msg.startswith(DECODE_FALLBACK), f"the server's error text did not reach the client: {msg[:300]}")
                    require("no-such-model" in msg, f"message {msg[:300]!r} does not mention the model")
                    return {"status": status, "message": msg[:300]}
                raise CheckFailed("expected 404, the call succeeded")

            await self.arun("aio_server_ready", ready)
            await self.arun("aio_server_metadata", server_metadata)
            await self.arun("aio_model_metadata", model_metadata)
            await self.arun("aio_model_ready_version", model_ready)
            await self.arun("aio_infer_fp32_binary", infer_binary)
            await self.arun("aio_infer_json", infer_json)
            await self.arun("aio_infer_bytes_png_binary", infer_png)
            await self.arun("aio_unknown_model", unknown_model)
        finally:
            await c.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="host:port, no scheme")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--model-version", default="1", help="the version the versioned calls name")
    p.add_argument("--png", required=True, help="a PNG the model classifies as --expected-label")
    p.add_argument("--expected-logits", help=".npy or .json (or raw float32) logits for the FP32 input")
    p.add_argument("--tolerance", type=float, default=1e-5)
    p.add_argument("--input-tensor", help="use this [1,3,32,32] FP32 tensor (.npy, .json, raw float32) instead of the built-in one")
    p.add_argument("--dump-input", help="write the FP32 input tensor here (.npy, .json, else raw little-endian float32) and go on")
    p.add_argument("--expected-index", type=int, default=3)
    p.add_argument("--expected-label", default="cat")
    p.add_argument("--skip", help="comma-separated call names not to run")
    p.add_argument("--no-aio", action="store_true", help="skip the tritonclient.http.aio calls")
    args = p.parse_args()

    checker = Checker(args)
    if args.dump_input:
        save_tensor(args.dump_input, checker.x)
    checker.sync_checks()
    if not args.no_aio:
        asyncio.run(checker.aio_checks())
    failed = [r["call"] for r in checker.results if not r["ok"]]
    print(f"{len(checker.results) - len(failed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
