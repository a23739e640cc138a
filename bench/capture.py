"""Data capture benchmark: what capturing every call adds to the call path, against the same
gateway without capture, measured in the same run.

Two measurements:

1. In the gateway process's code path: :meth:`DataCapture.offer` (what an answered call does for
   capture: sample, buffer the references) timed alone, per call, for a small and a 1 MiB payload
   (O(1): the payload is neither copied nor encoded there).
2. End to end on loopback: two ``sageport-gateway`` processes, identical but for one endpoint
   setting, in front of one echo backend: one with no data capture, one capturing 100 % of the
   calls (Input and Output, CSV as text) to a real S3 server (versitygw) every second. Raw
   keep-alive HTTP calls (bench/_load.py) alternate between them round by round, so background
   load hits both alike. Printed: p50/p99 at concurrency 1 and 16, the added p50 (target
   <= 0.1 ms at concurrency 1), and what reached S3.

    python -m bench.capture [--seconds 1] [--rounds 8] [--payload-bytes 64]

With two or more CPUs the backend gets the last CPU and the gateways and load generator share the
others, as in bench.gateway's default placement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench._load import Result, fetch, measure, merge, pin_threads, request_bytes
from sageport.gateway.capture import Batch, CaptureSettings, DataCapture
from sageport.gateway.metrics import GatewayMetrics
from sageport_dev.processes import free_port, terminate, wait_http

TARGET_ADDED_P50_MS = 0.1
ACCESS, SECRET, BUCKET = "benchcapture", "bench-capture-secret", "capture"
CSV = "text/csv"


# ---- 1. the call path alone -----------------------------------------------------------------
def offer_cost_ns(payload: bytes, calls: int = 200_000) -> tuple[float, float]:
    """p50 and p99 of one ``offer`` (ns), buffering every call (no sampling skipped)."""

    def nothing(batch: Batch) -> None:
        return None

    async def run() -> list[int]:
        capture = DataCapture(
            GatewayMetrics(CollectorRegistry()), nothing, max_bytes=1 << 62, flush_bytes=1 << 62
        )
        settings = CaptureSettings(
            percentage=100.0, bucket="b", prefix="p", inputs=True, outputs=True, csv_types=frozenset({CSV})
        )
        clock = time.perf_counter_ns
        samples = []
        for index in range(calls):
            started = clock()
            capture.offer(settings, "bench", "AllTraffic", "request-id", None, CSV, payload, CSV, payload)
            samples.append(clock() - started)
            if index % 10_000 == 9_999:  # keep memory flat: the writer would have taken these
                capture._pending.clear()
                capture._pending_bytes = 0
        return samples

    samples = sorted(asyncio.run(run()))
    return statistics.median(samples), float(samples[int(len(samples) * 0.99)])


def timer_overhead_ns() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(100_000):
        started = clock()
        samples.append(clock() - started)
    return statistics.median(samples)


# ---- 2. end to end --------------------------------------------------------------------------
def _start_s3(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    from sageport_dev.build import ensure_binaries

    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(ensure_binaries()["versitygw"]), "--access", ACCESS, "--secret", SECRET,
         "--port", f"127.0.0.1:{port}", "posix", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("versitygw did not start") from None
            time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    _s3_client(url).create_bucket(Bucket=BUCKET)
    return process, url


def _s3_client(url: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )


def _start_gateway(workdir: Path, name: str, backend: str, capture: bool, s3_url: str) -> tuple[
        subprocess.Popen[bytes], int]:  # fmt: skip
    routes = workdir / f"{name}.yaml"
    capture_yaml = (
        "    dataCaptureConfig:\n      initialSamplingPercentage: 100\n"
        f"      destinationS3URI: s3://{BUCKET}/bench\n"
        "      captureOptions: [{captureMode: Input}, {captureMode: Output}]\n"
        f"      captureContentTypeHeader: {{csvContentTypes: [{CSV}]}}\n"
        if capture
        else ""
    )
    routes.write_text(
        f'endpoints:\n  bench:\n    variants:\n      - name: AllTraffic\n        backends: ["{backend}"]\n'
        + capture_yaml
    )
    port = free_port()
    env = {**os.environ, "AWS_ENDPOINT_URL_S3": s3_url, "AWS_ACCESS_KEY_ID": ACCESS,
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("sageport-gateway")), "--host", "127.0.0.1", "--port", str(port),
         "--routes", str(routes), "--no-auth", "--log-level", "WARNING", "--capture-flush-seconds", "1"],
        env=env,
    )  # fmt: skip
    return process, port


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + "{"))


def _place(backend: int, gateways: list[int]) -> str:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return f"{len(cpus)} CPU, placed by the OS"
    pin_threads(backend, {cpus[-1]})
    for pid in [*gateways, os.getpid()]:
        pin_threads(pid, set(cpus[:-1]))
    return (
        f"{len(cpus)} CPUs: echo backend on CPU {cpus[-1]}, both gateways and the load generator "
        f"on CPU {','.join(map(str, cpus[:-1]))}"
    )


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=8, help="alternating off/on rounds per concurrency")
    parser.add_argument("--payload-bytes", type=int, default=64, help="CSV request body size")
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    overhead = timer_overhead_ns()
    print("data capture benchmark")
    print("\n1. DataCapture.offer alone (the call path's whole capture work), 200k calls each")
    for label, size in (("64 B payload", 64), ("1 MiB payload", 1 << 20)):
        p50, p99 = offer_cost_ns(b"1" * size)
        print(f"  {label:14s} p50 {(p50 - overhead) / 1e3:6.3f} us  p99 {(p99 - overhead) / 1e3:6.3f} us  "
              f"(timer overhead {overhead:.0f} ns subtracted)")  # fmt: skip

    workdir = Path(tempfile.mkdtemp(prefix="bench-capture-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        s3, s3_url = _start_s3(workdir / "s3")
        processes.append(s3)
        backend_port = free_port()
        backend = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway", "--serve-echo", str(backend_port), "--model-ms", "0"]
        )
        processes.append(backend)
        backend_url = f"http://127.0.0.1:{backend_port}"
        off, off_port = _start_gateway(workdir, "off", backend_url, False, s3_url)
        on, on_port = _start_gateway(workdir, "on", backend_url, True, s3_url)
        processes += [off, on]
        wait_http(backend_url + "/ping", backend, timeout=60)
        for process, port in ((off, off_port), (on, on_port)):
            wait_http(f"http://127.0.0.1:{port}/ping", process, timeout=60)
        placement = _place(backend.pid, [off.pid, on.pid])

        row = ",".join(["5.1", "3.5", "1.4", "0.2"] * 64).encode()[: args.payload_bytes]
        request = request_bytes("/endpoints/bench/invocations", row, CSV)
        off_address, on_address = ("127.0.0.1", off_port), ("127.0.0.1", on_port)
        head, expected = fetch(off_address, request)
        on_head, on_body = fetch(on_address, request)
        if not head.startswith(b"HTTP/1.1 200 ") or (on_head[:12], on_body) != (head[:12], expected):
            raise RuntimeError(f"unexpected answers: {head[:200]!r} / {on_head[:200]!r}")

        print(f"\n2. end to end: raw HTTP calls, {len(row)} B CSV, echo backend, loopback, --no-auth both")
        print(f"  {placement}")
        print("  capture on: 100 % of calls, Input and Output, to versitygw every 1 s")
        met = True
        for concurrency in (1, 16):
            measure(off_address, [request], concurrency, 0.5, expected)  # warm up both
            measure(on_address, [request], concurrency, 0.5, expected)
            off_runs: list[Result] = []
            on_runs: list[Result] = []
            for _ in range(args.rounds):
                off_runs.append(measure(off_address, [request], concurrency, args.seconds, expected))
                on_runs.append(measure(on_address, [request], concurrency, args.seconds, expected))
            met &= _report(concurrency, merge(off_runs), merge(on_runs))
        time.sleep(2.5)  # the last flush
        calls = _metric(on_port, "sageport_invocations_total")
        written = _metric(on_port, "sageport_data_capture_records_total")
        dropped = _metric(on_port, "sageport_data_capture_dropped_records_total")
        objects = sum(
            page.get("KeyCount", 0)
            for page in _s3_client(s3_url)
            .get_paginator("list_objects_v2")
            .paginate(Bucket=BUCKET, Prefix="bench/")
        )
        print(
            f"\n  captured: {written:.0f} of {calls:.0f} calls written to S3 in {objects} files, "
            f"{dropped:.0f} dropped"
        )
        print("\ntarget met" if met else "\ntarget missed")
    finally:
        for process in reversed(processes):
            terminate(process)


def _report(concurrency: int, off: Result, on: Result) -> bool:
    if off.errors or on.errors:
        raise RuntimeError(f"failed calls: capture off {off.errors}, on {on.errors}")
    added_p50 = on.p50 - off.p50
    print(f"\n  concurrency {concurrency} ({len(off.latencies_ms)} calls off, {len(on.latencies_ms)} on)")
    for label, result in (("capture off", off), ("capture on ", on)):
        print(f"    {label}: p50 {result.p50:7.3f} ms  p99 {result.p99:7.3f} ms  {result.rate:8.0f} req/s")
    print(
        f"    added p50 {added_p50:+.3f} ms, p99 {on.p99 - off.p99:+.3f} ms, throughput x{on.rate / off.rate:.2f}"
    )
    if concurrency != 1:
        return True
    ok = added_p50 <= TARGET_ADDED_P50_MS
    print(f"    added p50 target <= {TARGET_ADDED_P50_MS} ms: {'ok' if ok else 'MISSED'}")
    return ok


if __name__ == "__main__":
    main()
