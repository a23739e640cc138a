"""Async inference benchmark: InvokeEndpointAsync against InvokeEndpoint of the same model, by the
same number of concurrent boto3 clients, in one run on loopback with every part real: one
sageport-server (iris logistic regression), one standalone sageport-gateway serving the model as a
real-time endpoint and as an async one, Debian's redis-server (AOF everysec, a password),
versitygw, and one sageport-async-agent (concurrency = clients).

Printed:
1. calls/s of the synchronous baseline; accepted calls/s at the gateway (202s) and completed
   calls/s end to end (until the last output is in S3), each as a ratio to the baseline
   (target: completed >= 0.8x for small payloads);
2. a large input (``--large-mib``, default 1024) through a second agent to a model that reads
   the whole body (streamed, hashed, answered with its length and SHA-256): the agent's peak RSS
   over its idle RSS (target < 200 MB), and its time against copying the same object S3 -> S3
   with boto3 (download and upload) in the same run. Nothing holds the body in memory.

    python -m bench.async_inference [--calls 400] [--clients 8] [--large-mib 1024]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.server import train_logistic
from sageport import contract
from sageport_dev import redis as redis_server
from sageport_dev import wire
from sageport_dev.processes import free_port, terminate, wait_http

BUCKET = "bench-async"
ACCESS, SECRET = "benchasync", "bench-async-secret"
ROW = b"5.1,3.5,1.4,0.2\n"
BIN = Path(sys.executable).parent


def _versitygw(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    from sageport_dev.build import ensure_binaries

    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(ensure_binaries()["versitygw"]), "--access", ACCESS, "--secret", SECRET,
         "--port", f"127.0.0.1:{port}", "posix", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            _s3(url).create_bucket(Bucket=BUCKET)
            return process, url
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _s3(url: str) -> Any:
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
        region_name="us-east-1", config=Config(max_pool_connections=64),
    )  # fmt: skip


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _in_parallel(clients: int, calls: int, call: Any) -> float:
    """Seconds for ``calls`` calls of ``call(index)`` from ``clients`` threads."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, range(calls)))
    return time.perf_counter() - started


def _count(s3: Any, prefix: str) -> int:
    return sum(
        page.get("KeyCount", 0)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    )


def _wait_for(s3: Any, keys: list[str]) -> None:
    """Until every key is in the bucket. Each poll lists only after the longest run of keys
    (in key order) seen so far: listing the whole prefix every time cost the S3 server and this
    process more CPU, on the machine they share with the agent, the longer the run."""
    remaining = sorted(keys)
    seen: set[str] = set()
    after = ""
    while remaining:
        start = after
        while True:
            page = s3.list_objects_v2(Bucket=BUCKET, StartAfter=start, MaxKeys=1000)
            found = [item["Key"] for item in page.get("Contents", [])]
            seen.update(found)
            if not page.get("IsTruncated") or not found:
                break
            start = found[-1]
        while remaining and remaining[0] in seen:
            after = remaining.pop(0)
        if remaining:
            time.sleep(0.02)


def _serve_counting_model(port: int) -> None:
    """A model container that reads the whole body, streamed: its answer is the body's length
    and SHA-256 (proof it read every byte), its memory a chunk."""
    from aiohttp import web

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def invocations(request: web.Request) -> web.Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_chunked(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"bytes": size, "sha256": digest.hexdigest()})

    app = web.Application(client_max_size=2 << 30)
    app.add_routes([web.get("/ping", ping), web.post("/invocations", invocations)])
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def _start_agent(endpoint: str, model_url: str, concurrency: int, spool: Path, env: dict[str, str]) -> Any:
    port = free_port()
    agent = subprocess.Popen(
        [str(BIN / contract.ASYNC_AGENT_NAME), f"--stream={contract.async_stream('default', endpoint, 'AllTraffic')}",
         f"--endpoint={endpoint}", "--variant=AllTraffic", f"--model-url={model_url}",
         f"--concurrency={concurrency}", f"--metrics-port={port}", f"--spool-dir={spool}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/ping", agent, timeout=30)
    return agent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--serve-counting-model", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_counting_model:
        _serve_counting_model(args.serve_counting_model)
        return 0
    processes: list[subprocess.Popen[Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-async-") as scratch_dir:
        scratch = Path(scratch_dir)
        try:
            s3_process, s3_url = _versitygw(scratch / "s3")
            processes.append(s3_process)
            redis = redis_server.start(
                scratch / "redis", host="127.0.0.1", port=free_port(), die_with_parent=True
            )
            s3_env = {"AWS_ENDPOINT_URL_S3": s3_url, "AWS_ACCESS_KEY_ID": ACCESS,
                      "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
            env = {**os.environ, **redis.env(), **s3_env}
            model_port = free_port()
            model = subprocess.Popen(
                [sys.executable, "-m", "sageport.server", "serve", "--model-dir",
                 str(train_logistic(scratch / "model")), "--port", str(model_port)],
                env={**env, "SAGEPORT_BIND_HOST": "127.0.0.1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(model)
            model_url = f"http://127.0.0.1:{model_port}"
            wait_http(model_url + contract.PING_PATH, model, timeout=120)
            counting_port = free_port()
            counting = subprocess.Popen(
                [sys.executable, "-m", "bench.async_inference", f"--serve-counting-model={counting_port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(counting)
            counting_url = f"http://127.0.0.1:{counting_port}"
            wait_http(counting_url + "/ping", counting, timeout=60)
            routes = scratch / "routes.yaml"
            variant = [{"name": "AllTraffic", "backends": [model_url]}]
            output = {"s3OutputPath": f"s3://{BUCKET}/out", "s3FailurePath": f"s3://{BUCKET}/failed"}
            routes.write_text(yaml.safe_dump({"endpoints": {
                "sync": {"variants": variant},
                "queued": {"variants": variant, "asyncInferenceConfig": {"outputConfig": output}},
                "large": {"variants": [{"name": "AllTraffic", "backends": [counting_url]}],
                          "asyncInferenceConfig": {"outputConfig": output}},
            }}))  # fmt: skip
            gateway_port = free_port()
            gateway = subprocess.Popen(
                [str(BIN / "sageport-gateway"), "--host", "127.0.0.1", "--port", str(gateway_port),
                 "--routes", str(routes), "--no-auth"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(gateway)
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            wait_http(gateway_url + "/ping", gateway, timeout=30)
            processes.append(_start_agent("queued", model_url, args.clients, scratch, env))
            runtime = wire.runtime_client(gateway_url, "a", "b", attempts=3, pool=args.clients * 2)
            s3 = _s3(s3_url)

            def sync(index: int) -> None:
                body = runtime.invoke_endpoint(EndpointName="sync", ContentType="text/csv", Body=ROW)[
                    "Body"
                ].read()
                assert json.loads(body) == [0], body

            def queued(index: int) -> None:
                runtime.invoke_endpoint_async(EndpointName="queued", ContentType="text/csv", Body=ROW,
                                              InferenceId=f"bench-{index:06d}")  # fmt: skip

            _in_parallel(args.clients, 50, sync)  # warm both paths
            _in_parallel(args.clients, 20, lambda i: queued(100_000 + i))
            while _count(s3, "out/") < 20:
                time.sleep(0.1)
            sync_seconds = _in_parallel(args.clients, args.calls, sync)
            started = time.perf_counter()
            accepted_seconds = _in_parallel(args.clients, args.calls, queued)
            _wait_for(s3, [f"out/bench-{index:06d}.out" for index in range(args.calls)])
            completed_seconds = time.perf_counter() - started
            assert _count(s3, "failed/") == 0
            sync_rate = args.calls / sync_seconds
            accepted, completed = args.calls / accepted_seconds, args.calls / completed_seconds
            print(f"{args.calls} calls, {args.clients} concurrent clients, {len(ROW)}-byte CSV rows")
            print(f"  synchronous InvokeEndpoint          {sync_rate:8.1f} calls/s (baseline)")
            print(
                f"  InvokeEndpointAsync accepted (202)  {accepted:8.1f} calls/s  x{accepted / sync_rate:.2f}"
            )
            print(f"  InvokeEndpointAsync completed (S3)  {completed:8.1f} calls/s  x{completed / sync_rate:.2f}"
                  "  (target >= x0.80)")  # fmt: skip

            if args.large_mib:
                large = scratch / "large.bin"
                digest = hashlib.sha256()
                with large.open("wb") as out:
                    block = os.urandom(1 << 20)
                    for _ in range(args.large_mib):
                        out.write(block)
                        digest.update(block)
                s3.upload_file(str(large), BUCKET, "in/large.bin")
                large.unlink()
                started = time.perf_counter()
                copy = scratch / "copy.bin"
                s3.download_file(BUCKET, "in/large.bin", str(copy))
                s3.upload_file(str(copy), BUCKET, "copy/large.bin")
                copy.unlink()
                s3.delete_object(Bucket=BUCKET, Key="copy/large.bin")
                copy_seconds = time.perf_counter() - started
                agent = _start_agent("large", counting_url, 1, scratch, env)
                processes.append(agent)
                time.sleep(2)  # settled: what it holds between calls
                idle = _rss_kib(agent.pid, "VmRSS")
                started = time.perf_counter()
                runtime.invoke_endpoint_async(EndpointName="large", InputLocation=f"s3://{BUCKET}/in/large.bin",
                                              ContentType="application/octet-stream", InferenceId="large")  # fmt: skip
                while _count(s3, "out/large.out") + _count(s3, "failed/large-error.out") == 0:
                    time.sleep(0.2)
                large_seconds = time.perf_counter() - started
                peak = _rss_kib(agent.pid, "VmHWM")
                answer = json.loads(s3.get_object(Bucket=BUCKET, Key="out/large.out")["Body"].read())
                assert answer == {"bytes": args.large_mib << 20, "sha256": digest.hexdigest()}, answer
                print(f"a {args.large_mib} MiB input through the agent (read from S3, streamed to a model that "
                      f"reads and hashes all of it): {large_seconds:.1f} s, "
                      f"x{large_seconds / copy_seconds:.2f} of an S3 -> S3 copy with boto3 ({copy_seconds:.1f} s)")  # fmt: skip
                print(f"  agent RSS: idle {idle / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB, "
                      f"{(peak - idle) / 1024:.0f} MiB over idle (target < 200 MB)")  # fmt: skip
        finally:
            for process in reversed(processes):
                terminate(process)
            redis_server.stop_server(scratch / "redis")
    return 0


if __name__ == "__main__":
    sys.exit(main())
