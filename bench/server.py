"""Model server benchmark: sageport's /invocations against stock KServe and a bare ASGI echo.

One run, loopback only, bounded to tens of seconds. The same small scikit-learn model
(logistic regression on iris, trained here) is served by:

- sageport-server, ``POST /invocations`` (the SageMaker path);
- stock ``kserve.ModelServer`` with a plain ``kserve.Model`` subclass, V1 ``:predict``;
- a bare ASGI app on the same uvicorn stack that echoes the body (the floor: no model, no codec).

Each is measured at concurrency 1 (latency p50/p99) and 16 (requests/s). Then dynamic
batching: a random forest (per-call cost dominates: 100 trees walked per call, whatever the
row count) behind sageport-server with batching off and on, at 64 concurrent clients.

    python -m bench.server [--seconds 3] [--no-pin]

On machines with two or more CPUs the load generator is pinned to CPU 0 and every server to
CPU 1, so client and server do not steal each other's time slices; all servers get the same
placement. The load generator (bench/_load.py) is a minimal keep-alive HTTP/1.1 client on raw sockets,
so its own cost stays far below any server's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._load import Result, measure, pin_threads
from bench._load import request_bytes as _request
from sageport_dev.processes import free_port as _free_port
from sageport_dev.processes import terminate, wait_http

REPO = Path(__file__).resolve().parents[1]
TARGET_THROUGHPUT_VS_KSERVE = 1.5
TARGET_P50_VS_ECHO = 2.0
TARGET_BATCHING_GAIN = 3.0
ROW = [5.1, 3.5, 1.4, 0.2]


# -- servers run as children of this module --------------------------------------------------------
def run_echo(port: int) -> None:
    import uvicorn

    async def echo(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()  # type: ignore[operator]
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]

    uvicorn.run(
        echo,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


def run_kserve(model_dir: str, port: int) -> None:
    """Stock KServe, as its docs write a custom model: load in load(), predict on the instances."""
    sys.argv = [sys.argv[0]]
    import joblib
    import kserve
    import numpy as np

    class SklearnModel(kserve.Model):  # type: ignore[misc]
        def load(self) -> bool:
            self.model = joblib.load(Path(model_dir) / "model.joblib")
            self.ready = True
            return self.ready

        def predict(
            self, payload: dict[str, object], headers: dict[str, str] | None = None
        ) -> dict[str, object]:
            instances = np.asarray(payload["instances"])
            return {"predictions": self.model.predict(instances).tolist()}

    model = SklearnModel("model")
    model.load()
    kserve.ModelServer(http_port=port, grpc_port=_free_port()).start([model])


# -- orchestration --------------------------------------------------------------------------------


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "runtime"), str(REPO / "operator"), str(REPO)])
    # Every server ends up pinned to one CPU: one BLAS/OpenMP thread is what that CPU can run
    # (the same for all of them, so stock KServe is not handicapped by spinning BLAS threads).
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, "PYTHONPATH": path, **threads, **(extra or {})}


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


IDENTITY_INFERENCE_PY = """
import numpy as np


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    return np.asarray(data)
"""


def _model_call_p50_ms(model_dir: Path, calls: int = 2000) -> float:
    """What one predict() on one row costs in this process, with no server around it."""
    import joblib
    import numpy as np

    model = joblib.load(model_dir / "model.joblib")
    row = np.asarray([ROW])
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        model.predict(row)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings[calls // 10 :]) * 1000


def train_logistic(directory: Path) -> Path:
    """The small model of both server benchmarks: logistic regression on iris, as model.joblib."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    directory.mkdir()
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), directory / "model.joblib")
    return directory


def _train(directory: Path) -> tuple[Path, Path, Path]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    features, labels = load_iris(return_X_y=True)
    small = train_logistic(directory / "logistic")
    forest = directory / "forest"
    forest.mkdir()
    joblib.dump(
        RandomForestClassifier(n_estimators=100, random_state=0).fit(features, labels),
        forest / "model.joblib",
    )
    identity = directory / "identity"
    (identity / "code").mkdir(parents=True)
    (identity / "code" / "inference.py").write_text(IDENTITY_INFERENCE_PY)
    return small, forest, identity


def _line(name: str, result: Result) -> str:
    return (
        f"  {name:<34} {result.rate:>8.0f} req/s   p50 {result.p50:6.3f} ms   "
        f"p99 {result.p99:7.3f} ms   errors {result.errors}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measurement window per figure")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin client and servers to separate CPUs"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "echo":
            run_echo(int(args.child[1]))
        else:
            run_kserve(args.child[1], int(args.child[2]))
        return 0

    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    server_cpus = {1} if pin else None
    if pin:
        os.sched_setaffinity(0, {0})
    seconds = args.seconds
    me = [sys.executable, "-m", "bench.server", "--child"]
    sageport = [sys.executable, "-m", "sageport.server", "serve"]
    invocation = _request("/invocations", json.dumps([ROW]).encode())

    with tempfile.TemporaryDirectory(prefix="bench-server-") as scratch:
        small, forest, identity = _train(Path(scratch))
        model_call_ms = _model_call_p50_ms(small)
        lean = {"SAGEPORT_BIND_HOST": "127.0.0.1", "SAGEPORT_KSERVE_ROUTES": "false"}
        batch = {"SAGEPORT_BATCH_MAX_SIZE": "64", "SAGEPORT_BATCH_MAX_WAIT_MS": "2"}
        # name -> (command without port, env, readiness path, request)
        plans: dict[str, tuple[list[str], dict[str, str], str, bytes]] = {
            "sageport": (
                [*sageport, "--model-dir", str(small), "--port"],
                {"SAGEPORT_BIND_HOST": "127.0.0.1"},
                # Wait for the KServe routes too, so sageport's background import is over.
                "/v2/health/ready",
                invocation,
            ),
            "kserve": (
                [*me, "kserve", str(small)],
                {},
                "/v1/models/model",
                _request("/v1/models/model:predict", json.dumps({"instances": [ROW]}).encode()),
            ),
            "echo": ([*me, "echo"], {}, "/", _request("/echo", json.dumps([ROW]).encode())),
            "identity": ([*sageport, "--model-dir", str(identity), "--port"], lean, "/ping", invocation),
            "batching off": (
                [*sageport, "--model-dir", str(forest), "--port"],
                {**lean, **batch, "SAGEPORT_BATCHING": "false"},
                "/ping",
                invocation,
            ),
            "batching on": (
                [*sageport, "--model-dir", str(forest), "--port"],
                {**lean, **batch, "SAGEPORT_BATCHING": "true"},
                "/ping",
                invocation,
            ),
        }
        ports = {name: _free_port() for name in plans}
        phase = time.monotonic()
        # All start at once, unpinned, so their imports overlap; each is pinned once ready.
        processes = {
            name: _start([*command, str(ports[name])], _env(env))
            for name, (command, env, _, _) in plans.items()
        }
        results: dict[str, dict[int, Result]] = {}
        try:
            for name, (_, _, ready_path, _) in plans.items():
                wait_http(f"http://127.0.0.1:{ports[name]}{ready_path}", processes[name], timeout=180)
                if server_cpus is not None:
                    pin_threads(processes[name].pid, server_cpus)
            print(f"servers ready in {time.monotonic() - phase:.0f} s", flush=True)
            for name, concurrencies in (
                ("echo", (1, 16)),
                ("kserve", (1, 16)),
                ("sageport", (1, 16)),
                ("identity", (1,)),
                ("batching off", (64,)),
                ("batching on", (64,)),
            ):
                request = plans[name][3]
                results[name] = {
                    c: measure(
                        ("127.0.0.1", ports[name]), [request], c, seconds, warm_up=min(0.5, seconds / 4)
                    )
                    for c in concurrencies
                }
        finally:
            for process in processes.values():
                terminate(process, 30)
        batching = {"false": results["batching off"][64], "true": results["batching on"][64]}

    ours, stock, echo = results["sageport"], results["kserve"], results["echo"]
    print(f"model server benchmark ({seconds:.0f} s per figure, loopback, {'pinned' if pin else 'unpinned'})")
    for concurrency in (1, 16):
        print(f" concurrency {concurrency}")
        print(_line("bare ASGI echo", echo[concurrency]))
        print(_line("stock kserve V1 :predict", stock[concurrency]))
        print(_line("sageport /invocations", ours[concurrency]))
        if concurrency == 1:
            print(_line("sageport /invocations, identity model", results["identity"][1]))
    throughput_ratio = ours[16].rate / stock[16].rate
    p50_ratio = ours[1].p50 / echo[1].p50
    print(" random forest (100 trees), 64 concurrent clients")
    print(_line("sageport, batching off", batching["false"]))
    print(_line("sageport, batching on (max 64, 2 ms)", batching["true"]))
    batching_gain = batching["true"].rate / batching["false"].rate

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print("ratios")
    print(
        f"  throughput vs stock kserve (c=16):  {throughput_ratio:5.2f}x   "
        f"target >= {TARGET_THROUGHPUT_VS_KSERVE}x  {verdict(throughput_ratio >= TARGET_THROUGHPUT_VS_KSERVE)}"
    )
    print(
        f"  p50 vs bare echo (c=1):             {p50_ratio:5.2f}x   "
        f"target <= {TARGET_P50_VS_ECHO}x  {verdict(p50_ratio <= TARGET_P50_VS_ECHO)}"
    )
    print(
        f"  batching on vs off (c=64):          {batching_gain:5.2f}x   "
        f"target >= {TARGET_BATCHING_GAIN}x  {verdict(batching_gain >= TARGET_BATCHING_GAIN)}"
    )
    print(
        f"  also: p50 vs stock kserve (c=1) {ours[1].p50 / stock[1].p50:.2f}x; "
        f"throughput vs echo (c=16) {ours[16].rate / echo[16].rate:.2f}x"
    )
    identity_ratio = results["identity"][1].p50 / echo[1].p50
    print(
        f"  where the sklearn p50 goes: model.predict() on one row alone takes {model_call_ms:.3f} ms in-process "
        f"(scikit-learn's input validation);\n  the server path without it (identity model) is "
        f"{identity_ratio:.2f}x the echo's p50, and sageport p50 minus the predict call is "
        f"{max(ours[1].p50 - model_call_ms, 0) / echo[1].p50:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
