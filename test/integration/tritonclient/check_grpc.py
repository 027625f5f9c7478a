#!/usr/bin/env python3
"""Runs NVIDIA's unmodified Python `tritonclient.grpc` (default modes) against a running server
and reports one JSON line per call: {"call": ..., "ok": bool, "detail": ...}.
Exits 0 when every call passed, 1 when any failed, 2 on bad arguments.

Run it with Debian's python and the client kit on PYTHONPATH, from any folder other than
the kit itself:

    PYTHONPATH=/path/to/shared/clients/tritonclient /usr/bin/python3 check_grpc.py \\
        --url 127.0.0.1:8001 --model resnet20 --png .../images/photos/chelsea.png \\
        [--expected-logits logits.npy|logits.json] [--dump-input x.f32] \\
        [--api-key KEY] [--timeout-check]

The FP32 input and --expected-logits / --tolerance / --dump-input / --input-tensor are those
of check_http.py (its helpers are imported from there): see that file's docstring.

Calls, all through tritonclient.grpc.InferenceServerClient with its defaults (protobuf answers,
not as_json): is_server_live, is_server_ready, get_server_metadata, get_model_metadata and
is_model_ready (with and without model_version), infer FP32 (logits against --expected-logits),
with a requested output, with model_version, with a request id, gzip-compressed; infer BYTES
(the raw PNG file as one element) -> argmax --expected-index; InferRequestedOutput(class_count=3)
-> first entry "<value>:<index>:<label>"; a bidirectional stream of --stream-count requests
(start_stream / async_stream_infer / stop_stream) answered in order; a stream whose first
request names an unknown model (error_message in the stream, the stream stays usable); unknown
model -> StatusCode.NOT_FOUND with the server's message; is_model_ready of an unknown model ->
False; wrong input shape -> StatusCode.INVALID_ARGUMENT; get_inference_statistics (one model,
all models); grpc.health.v1 Check (overall, the inference service, an unknown service ->
NOT_FOUND) through the kit's health_pb2_grpc and Watch (first answer) on the client's own
channel. With --timeout-check, infer with client_timeout=--client-timeout -> DEADLINE_EXCEEDED
(needs a server slower than that). With --api-key K every call sends the metadata
`authorization: Bearer K`, and calls without it (or with a wrong key) must fail with
StatusCode.UNAUTHENTICATED, except the liveness/readiness probes (ServerLive, ServerReady,
grpc.health.v1 Check), which must still answer without a key, as /v2/health/* do over HTTP.
"""
import argparse
import os
import queue
import sys
import threading
import time

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_http import (  # noqa: E402 - the same folder, after the path is set
    CheckerBase,
    CheckFailed,
    require,
    save_tensor,
)

INFERENCE_SERVICE = "inference.GRPCInferenceService"
UNKNOWN_MODEL = "no-such-model"
SERVING = health_pb2.HealthCheckResponse.SERVING


def status_name(code):
    """tritonclient's status text for a grpc.StatusCode, e.g. "StatusCode.NOT_FOUND"."""
    return str(code)


class Checker(CheckerBase):
    def __init__(self, args):
        super().__init__(args)
        # What every call sends: tritonclient turns `headers` into gRPC metadata as given.
        self.headers = {"authorization": f"Bearer {args.api_key}"} if args.api_key else None
        self.metadata = tuple(self.headers.items()) if self.headers else ()

    def failure(self, e):
        if isinstance(e, grpc.RpcError) and not isinstance(e, InferenceServerException):
            return {"exception": "grpc.RpcError", "status": status_name(e.code()), "message": (e.details() or "")[:500]}
        return super().failure(e)

    # -- inputs and outputs ---------------------------------------------------------------
    def fp32_input(self, x=None):
        x = self.x if x is None else x
        inp = grpcclient.InferInput(self.input_name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x)  # the only mode: raw little-endian bytes in raw_input_contents
        return inp

    def png_input(self):
        inp = grpcclient.InferInput(self.input_name, [1], "BYTES")
        inp.set_data_from_numpy(np.array([self.png], dtype=np.object_))  # 4-byte LE length + the file
        return inp

    def output(self, **kw):
        return [grpcclient.InferRequestedOutput(self.output_name, **kw)]

    def find_output(self, result):
        response = result.get_response()
        names = [o.name for o in response.outputs]
        require(self.output_name in names, f"response has no output {self.output_name!r}: outputs {names}")
        index = names.index(self.output_name)
        return response, response.outputs[index], index

    def check_logits(self, result, compare=True, want_id=None):
        response, out, index = self.find_output(result)
        require(response.model_name == self.args.model, f"response model_name {response.model_name!r}, expected {self.args.model!r}")
        if want_id is not None:
            require(response.id == want_id, f"response id {response.id!r}, expected {want_id!r}")
        require(out.datatype == "FP32", f"output datatype {out.datatype!r}, expected 'FP32'")
        require(list(out.shape) == [1, 10], f"output shape {list(out.shape)}, expected [1, 10]")
        # tritonclient reads FP32 only from raw_output_contents[i] for the i-th output: typed
        # contents (fp32_contents) would come back as an empty array.
        require(index < len(response.raw_output_contents),
                f"output {index} has no raw_output_contents entry ({len(response.raw_output_contents)} for {len(response.outputs)} outputs); "
                f"fp32_contents has {len(out.contents.fp32_contents)} values")
        require(len(response.raw_output_contents[index]) == 40,
                f"raw_output_contents[{index}] is {len(response.raw_output_contents[index])} bytes, expected 40 (10 FP32)")
        logits = result.as_numpy(self.output_name)
        require(logits is not None, "as_numpy returned None")
        require(list(logits.shape) == [1, 10], f"logits shape {list(logits.shape)}, expected [1, 10]")
        require(logits.dtype == np.float32, f"logits dtype {logits.dtype}, expected float32")
        detail = {"model_version": response.model_version, "argmax": int(np.argmax(logits))}
        if response.id:
            detail["id"] = response.id
        if compare and self.expected is not None:
            diff = float(np.max(np.abs(logits.reshape(-1).astype(np.float64) - self.expected)))
            detail["max_abs_diff"] = diff
            require(diff <= self.args.tolerance, f"logits differ from expected by {diff} > {self.args.tolerance}: {logits.reshape(-1).tolist()}")
        return logits, detail

    def check_cat(self, result):
        logits, detail = self.check_logits(result, compare=False)
        require(int(np.argmax(logits)) == self.args.expected_index,
                f"argmax {int(np.argmax(logits))}, expected {self.args.expected_index} ({self.args.expected_label})")
        e = np.exp(logits.reshape(-1).astype(np.float64) - logits.max())
        detail["p"] = round(float(e[self.args.expected_index] / e.sum()), 6)
        return detail

    def check_classification(self, result, count):
        response, out, index = self.find_output(result)
        require(out.datatype == "BYTES", f"classification output datatype {out.datatype!r}, expected 'BYTES'")
        require(list(out.shape) == [1, count], f"classification shape {list(out.shape)}, expected [1, {count}]")
        carrier = "raw_output_contents" if index < len(response.raw_output_contents) else "contents.bytes_contents"
        arr = result.as_numpy(self.output_name)
        require(arr is not None and list(arr.shape) == [1, count], f"as_numpy gave {None if arr is None else list(arr.shape)}, expected [1, {count}]")
        entries = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]
        parsed = []
        for s in entries:
            parts = s.split(":", 2)
            require(len(parts) >= 2, f"classification entry {s!r} is not '<value>:<index>[:<label>]'")
            parsed.append((float(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else None))
        require(parsed[0][1] == self.args.expected_index and parsed[0][2] == self.args.expected_label,
                f"first classification {entries[0]!r}, expected index {self.args.expected_index} label {self.args.expected_label!r}")
        require(all(parsed[i][0] >= parsed[i + 1][0] for i in range(len(parsed) - 1)), f"classification values not descending: {entries}")
        return {"carrier": carrier, "entries": entries}

    def expect_error(self, fn, code, must_mention=None):
        want = status_name(code)
        try:
            fn()
        except InferenceServerException as e:
            status, msg = e.status(), e.message() or ""
            require(status == want, f"status {status}, expected {want}; message: {msg[:300]}")
            require(msg.strip() != "", "the error carries no message")
            if must_mention is not None:
                require(must_mention in msg, f"message {msg[:300]!r} does not mention {must_mention!r}")
            return {"status": status, "message": msg[:300]}
        raise CheckFailed(f"expected an error with status {want}, the call succeeded")

    # -- the calls --------------------------------------------------------------------------
    def checks(self):
        a, m = self.args, self.args.model
        c = grpcclient.InferenceServerClient(a.url)
        try:
            self.run_calls(c, m)
            if a.api_key:
                self.run_key_calls(c, m)
        finally:
            c.close()

    def run_calls(self, c, m):
        h = self.headers

        def live():
            require(c.is_server_live(headers=h) is True, "is_server_live() returned False")
            return "live"

        def ready():
            require(c.is_server_ready(headers=h) is True, "is_server_ready() returned False")
            return "ready"

        def server_metadata():
            md = c.get_server_metadata(headers=h)
            require(md.name != "", f"server metadata has no name: {md}")
            require(md.version != "", f"server metadata has no version: {md}")
            return {"name": md.name, "version": md.version, "extensions": list(md.extensions)}

        def model_metadata(version):
            def f():
                md = c.get_model_metadata(m, model_version=version, headers=h)
                require(md.name == m, f"metadata name {md.name!r}, expected {m!r}")
                require(len(md.inputs) >= 1 and len(md.outputs) >= 1, f"metadata lacks inputs/outputs: {md}")
                self.input_name, self.output_name = md.inputs[0].name, md.outputs[0].name
                t = lambda ts: [{"name": x.name, "datatype": x.datatype, "shape": list(x.shape)} for x in ts]  # noqa: E731
                return {"versions": list(md.versions), "platform": md.platform, "inputs": t(md.inputs), "outputs": t(md.outputs)}
            return f

        def model_ready(version):
            def f():
                require(c.is_model_ready(m, model_version=version, headers=h) is True,
                        f"is_model_ready({m!r}, model_version={version!r}) returned False")
                return "ready"
            return f

        def infer(inputs_fn, check=None, **kw):
            def f():
                r = c.infer(m, [inputs_fn()], headers=h, **kw)
                if check is not None:
                    return check(r)
                return self.check_logits(r)[1]
            return f

        self.run("server_live", live)
        self.run("server_ready", ready)
        self.run("server_metadata", server_metadata)
        self.run("model_metadata", model_metadata(""))
        self.run("model_metadata_version", model_metadata(self.version))
        self.run("model_ready", model_ready(""))
        self.run("model_ready_version", model_ready(self.version))
        self.run("infer_fp32", infer(self.fp32_input))
        self.run("infer_fp32_requested_output", infer(self.fp32_input, outputs=self.output()))
        self.run("infer_model_version", infer(self.fp32_input, model_version=self.version))
        self.run("infer_request_id", infer(self.fp32_input, request_id="req-42", check=lambda r: self.check_logits(r, want_id="req-42")[1]))
        self.run("infer_gzip_request", infer(self.fp32_input, compression_algorithm="gzip"))
        self.run("infer_bytes_png", infer(self.png_input, check=self.check_cat))
        self.run("infer_classification", infer(self.png_input, outputs=self.output(class_count=3),
                                               check=lambda r: self.check_classification(r, 3)))
        self.run("stream_in_order", lambda: self.stream_in_order(c, m))
        self.run("stream_unknown_model", lambda: self.stream_unknown_model(c, m))
        self.run("unknown_model", lambda: self.expect_error(
            lambda: c.infer(UNKNOWN_MODEL, [self.fp32_input()], headers=h), grpc.StatusCode.NOT_FOUND, must_mention=UNKNOWN_MODEL))
        self.run("unknown_model_metadata", lambda: self.expect_error(
            lambda: c.get_model_metadata(UNKNOWN_MODEL, headers=h), grpc.StatusCode.NOT_FOUND, must_mention=UNKNOWN_MODEL))
        self.run("unknown_model_ready", lambda: (require(c.is_model_ready(UNKNOWN_MODEL, headers=h) is False,
                                                         "is_model_ready returned True"), "not ready")[1])
        wrong = np.zeros((1, 3, 16, 16), dtype=np.float32)
        self.run("wrong_shape", lambda: self.expect_error(
            lambda: c.infer(m, [self.fp32_input(x=wrong)], headers=h), grpc.StatusCode.INVALID_ARGUMENT))
        if self.args.timeout_check:
            self.run("client_timeout", lambda: self.expect_error(
                lambda: c.infer(m, [self.fp32_input()], headers=h, client_timeout=self.args.client_timeout), grpc.StatusCode.DEADLINE_EXCEEDED))

        def stats(name):
            def f():
                s = c.get_inference_statistics(model_name=name, headers=h)
                names = [e.name for e in s.model_stats]
                require(m in names, f"model_stats has no entry for {m!r}: {names}")
                entry = s.model_stats[names.index(m)]
                require(entry.inference_stats.success.count >= 1,
                        f"inference_stats.success.count is {entry.inference_stats.success.count} after successful infers")
                return {"models": names, "version": entry.version, "inference_count": entry.inference_count,
                        "execution_count": entry.execution_count, "success": entry.inference_stats.success.count,
                        "fail": entry.inference_stats.fail.count}
            return f
        self.run("inference_statistics", stats(m))
        self.run("inference_statistics_all", stats(""))

        health = health_pb2_grpc.HealthStub(c._channel)  # the client's own channel

        def health_check(service):
            def f():
                r = health.Check(health_pb2.HealthCheckRequest(service=service), metadata=self.metadata, timeout=10)
                require(r.status == SERVING, f"status {health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)}, expected SERVING")
                return "SERVING"
            return f

        def health_unknown():
            try:
                health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), metadata=self.metadata, timeout=10)
            except grpc.RpcError as e:
                require(e.code() == grpc.StatusCode.NOT_FOUND, f"status {e.code()}, expected StatusCode.NOT_FOUND: {e.details()}")
                return {"status": status_name(e.code()), "message": e.details()}
            raise CheckFailed("an unknown service was not refused with NOT_FOUND")

        def health_watch():
            # The kit's health_pb2_grpc declares only Check; Watch is called by its path.
            watch = c._channel.unary_stream("/grpc.health.v1.Health/Watch",
                                            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                            response_deserializer=health_pb2.HealthCheckResponse.FromString)
            call = watch(health_pb2.HealthCheckRequest(service=""), metadata=self.metadata, timeout=10)
            try:
                first = next(call)
            finally:
                call.cancel()
            require(first.status == SERVING, f"first Watch answer {health_pb2.HealthCheckResponse.ServingStatus.Name(first.status)}, expected SERVING")
            return "SERVING"

        self.run("health_check", health_check(""))
        self.run("health_check_inference_service", health_check(INFERENCE_SERVICE))
        self.run("health_check_unknown_service", health_unknown)
        self.run("health_watch", health_watch)

    # -- streams ----------------------------------------------------------------------------
    def collect_stream(self, c, send, expected, headers):
        """Starts a stream, lets `send` enqueue requests, stops it (waiting for the server to
        finish) and returns the callbacks' (result, error) pairs in arrival order."""
        events = queue.Queue()

        def callback(result, error):
            events.put((result, error))

        c.start_stream(callback, stream_timeout=self.args.stream_timeout, headers=headers)
        got = []
        try:
            try:
                send()
            except InferenceServerException as e:
                # async_stream_infer refuses once the RPC has ended (e.g. refused at once);
                # the RPC's own status then reaches the callback, which is what counts.
                if "no longer in valid state" not in (e.message() or ""):
                    raise
                expected = 1
            # Wait for the answers before closing our side, so a server that ends the stream on
            # half-close cannot drop late ones; stop_stream() then waits for the server's end.
            deadline = time.monotonic() + self.args.stream_timeout
            while len(got) < expected and time.monotonic() < deadline:
                try:
                    got.append(events.get(timeout=max(0.01, deadline - time.monotonic())))
                except queue.Empty:
                    break
                if got[-1][1] is not None and got[-1][1].status() is not None:
                    break  # the stream itself failed (an RPC status): nothing more will come
        finally:
            stopper = threading.Thread(target=c.stop_stream, daemon=True)
            stopper.start()
            stopper.join(self.args.stream_timeout)
        require(not stopper.is_alive(), f"stop_stream() did not return within {self.args.stream_timeout}s: the server never ended the stream")
        late = []
        while not events.empty():
            late.append(events.get())
        ended = [e for _, e in late if e is not None and e.status() is not None]
        require(not ended, f"after the client half-closed, the stream ended with {ended[0]} instead of status OK "
                           "(the server must end the stream once the client's side is closed and every answer is sent)" if ended else "")
        return got + late

    def stream_in_order(self, c, m):
        n = self.args.stream_count

        def send():
            for i in range(n):
                c.async_stream_infer(m, [self.fp32_input()], request_id=str(i))

        got = self.collect_stream(c, send, n, self.headers)
        errors = [str(e) for _, e in got if e is not None]
        require(not errors, f"stream errors: {errors[:3]}")
        require(len(got) == n, f"{len(got)} answers for {n} requests")
        ids = [r.get_response().id for r, _ in got]
        require(ids == [str(i) for i in range(n)], f"answers arrived as ids {ids}, expected {[str(i) for i in range(n)]}")
        diffs = [self.check_logits(r, want_id=str(i))[1].get("max_abs_diff") for i, (r, _) in enumerate(got)]
        return {"ids": ids, "max_abs_diff": max((d for d in diffs if d is not None), default=None)}

    def stream_unknown_model(self, c, m):
        def send():
            c.async_stream_infer(UNKNOWN_MODEL, [self.fp32_input()], request_id="bad")
            c.async_stream_infer(m, [self.fp32_input()], request_id="good")

        got = self.collect_stream(c, send, 2, self.headers)
        require(len(got) == 2, f"{len(got)} answers for 2 requests: {[(r and r.get_response().id, e and str(e)) for r, e in got]}")
        (r0, e0), (r1, e1) = got
        require(r0 is None and e0 is not None, "the request for an unknown model did not come back as an error")
        require(e0.status() is None, f"the stream itself failed ({e0}); an unknown model must be an error_message in the stream")
        require(UNKNOWN_MODEL in (e0.message() or ""), f"stream error {e0.message()!r} does not mention {UNKNOWN_MODEL!r}")
        require(e1 is None, f"the request after the error failed: {e1}")
        self.check_logits(r1, want_id="good")
        return {"error_message": e0.message()[:300], "then": "good"}

    # -- API key ----------------------------------------------------------------------------
    def run_key_calls(self, c, m):
        unauth = grpc.StatusCode.UNAUTHENTICATED
        wrong = {"authorization": "Bearer not-the-key"}

        def no_key_stream():
            def send():
                c.async_stream_infer(m, [self.fp32_input()], request_id="0")
            got = self.collect_stream(c, send, 1, None)
            require(len(got) >= 1, "no answer and no error on a stream without the key")
            result, error = got[0]
            require(result is None and error is not None, "a stream without the key was answered")
            require(error.status() == status_name(unauth), f"stream status {error.status()}, expected {status_name(unauth)}: {error.message()}")
            return {"status": error.status(), "message": (error.message() or "")[:300]}

        def open_probe(fn, what):
            def f():
                require(fn() is True, f"{what} without the key returned False")
                return "answered without the key"
            return f

        def open_health():
            r = health_pb2_grpc.HealthStub(c._channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            require(r.status == SERVING, f"status {r.status}, expected SERVING")
            return "SERVING without the key"

        self.run("no_key_server_metadata", lambda: self.expect_error(lambda: c.get_server_metadata(), unauth))
        self.run("no_key_model_metadata", lambda: self.expect_error(lambda: c.get_model_metadata(m), unauth))
        self.run("no_key_model_ready", lambda: self.expect_error(lambda: c.is_model_ready(m), unauth))
        self.run("no_key_infer", lambda: self.expect_error(lambda: c.infer(m, [self.fp32_input()]), unauth))
        self.run("wrong_key_infer", lambda: self.expect_error(lambda: c.infer(m, [self.fp32_input()], headers=wrong), unauth))
        self.run("no_key_stream", no_key_stream)
        self.run("no_key_statistics", lambda: self.expect_error(lambda: c.get_inference_statistics(m), unauth))
        self.run("no_key_server_live", open_probe(c.is_server_live, "is_server_live"))
        self.run("no_key_server_ready", open_probe(c.is_server_ready, "is_server_ready"))
        self.run("no_key_health_check", open_health)


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
    p.add_argument("--api-key", help="send 'authorization: Bearer KEY' on every call, and check that calls without it are refused")
    p.add_argument("--timeout-check", action="store_true", help="also check that client_timeout gives DEADLINE_EXCEEDED (needs a slow server)")
    p.add_argument("--client-timeout", type=float, default=0.001, help="seconds, for --timeout-check")
    p.add_argument("--only", help="comma-separated call names: run only these")
    p.add_argument("--stream-count", type=int, default=10, help="requests sent on the in-order stream")
    p.add_argument("--stream-timeout", type=float, default=60.0, help="seconds a stream may take before it counts as hung")
    p.add_argument("--skip", help="comma-separated call names not to run")
    args = p.parse_args()

    checker = Checker(args)
    if args.dump_input:
        save_tensor(args.dump_input, checker.x)
    checker.checks()
    failed = [r["call"] for r in checker.results if not r["ok"]]
    print(f"{len(checker.results) - len(failed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
