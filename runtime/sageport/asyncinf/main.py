"""``sageport-async-agent --stream KEY --endpoint NAME --variant NAME ...``: the async inference
agent sidecar of an async variant's pods (the operator writes these arguments). Redis' URL and
password come from SAGEPORT_REDIS_URL and SAGEPORT_REDIS_PASSWORD, S3's from the AWS_* variables;
``GET /metrics`` and ``GET /ping`` answer on ``--metrics-port`` (sageport.net's HTTP server)."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from sageport import contract
from sageport.asyncinf.agent import Agent, AgentSettings
from sageport.asyncinf.metrics import AgentMetrics
from sageport.asyncinf.notify import Notifier
from sageport.net import awserrors
from sageport.net.httpserver import HttpProtocol, Request, Response, ServerState, StreamSink
from sageport.storage.objects import ObjectStore

log = logging.getLogger("sageport.asyncinf")
METRICS_PORT = contract.ASYNC_AGENT_PORT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=contract.ASYNC_AGENT_NAME, description=__doc__)
    parser.add_argument("--stream", required=True, help="the variant's Redis stream (contract.async_stream)")
    parser.add_argument("--endpoint", required=True, help="the endpoint name (notifications, metric labels)")
    parser.add_argument("--variant", required=True, help="the variant name (metric labels)")
    parser.add_argument("--model-url", default=f"http://127.0.0.1:{contract.CONTAINER_PORT}")
    parser.add_argument("--concurrency", type=int, default=1, help="maxConcurrentInvocationsPerInstance")
    parser.add_argument("--consumer", default=None, help="consumer name (default: the host name, the pod's)")
    parser.add_argument(
        "--spool-dir", default=None, help="where inputs and outputs are spooled (default /tmp)"
    )
    parser.add_argument(
        "--reclaim-idle", type=float, default=60.0, help="seconds before a quiet entry is claimed"
    )
    parser.add_argument(
        "--heartbeat", type=float, default=10.0, help="seconds between claims of entries in work"
    )
    parser.add_argument("--success-topic", default=None, help="http(s) URL notified of each output")
    parser.add_argument("--error-topic", default=None, help="http(s) URL notified of each failure")
    parser.add_argument(
        "--include-response-in", action="append", choices=("success", "error"), default=[],
        help="notifications (of outputs, of failures) that carry the model's answer up to 128 KB",
    )  # fmt: skip
    parser.add_argument("--metrics-port", type=int, default=METRICS_PORT)
    parser.add_argument("--log-level", default="INFO")
    return parser


def redis_client() -> object:
    import redis.asyncio

    url = os.environ.get(contract.REDIS_URL_ENV)
    if not url:
        raise SystemExit(f"{contract.REDIS_URL_ENV} is not set: the agent needs Redis (redis://host:port)")
    password = os.environ.get(contract.REDIS_PASSWORD_ENV) or None
    return redis.asyncio.Redis.from_url(
        url, password=password, socket_keepalive=True, health_check_interval=30, retry_on_timeout=True
    )


async def serve(args: argparse.Namespace) -> None:
    from sageport.storage.s3 import s3_client

    registry = CollectorRegistry()
    metrics = AgentMetrics(registry, args.endpoint, args.variant)
    settings = AgentSettings(
        stream=args.stream,
        consumer=args.consumer or socket.gethostname(),
        model_url=args.model_url.rstrip("/"),
        endpoint=args.endpoint,
        concurrency=args.concurrency,
        spool_dir=args.spool_dir,
        reclaim_idle=args.reclaim_idle,
        heartbeat=args.heartbeat,
        success_topic=args.success_topic,
        error_topic=args.error_topic,
        include_response_in_success="success" in args.include_response_in,
        include_response_in_error="error" in args.include_response_in,
    )
    redis = redis_client()
    s3 = s3_client(max_attempts=5, pool=args.concurrency * 2 + 2)
    # Multipart uploads of large results run in threads: one per call in flight at most.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(args.concurrency + 1, thread_name_prefix="s3")
    )
    # boto3's timeouts (60 s to connect, 60 s between reads), none for a whole 1 GB transfer.
    s3_timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=60)
    s3_connector = aiohttp.TCPConnector(limit=args.concurrency * 2 + 2)
    async with (
        aiohttp.ClientSession() as session,
        aiohttp.ClientSession(connector=s3_connector, timeout=s3_timeout) as s3_session,
    ):
        objects = ObjectStore(s3_session, s3)
        agent = Agent(redis, s3, objects, settings, metrics, Notifier(session))

        async def handle(request: Request, sink: StreamSink) -> Response:
            if request.method == "GET" and request.raw_path == "/metrics":
                return Response(200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(registry))
            if request.method == "GET" and request.raw_path == contract.PING_PATH:
                return Response(200, {"Content-Type": "text/plain"}, b"ok\n")
            return Response(404, {"Content-Type": "text/plain"}, b"not found\n")

        def render_error(status: int, message: str) -> Response:
            code, headers, body = awserrors.render_error(awserrors.validation_error(message), "-")
            return Response(code, headers, body)

        loop = asyncio.get_running_loop()
        state = ServerState(handle, render_error, 1024)
        server = await loop.create_server(lambda: HttpProtocol(state), "0.0.0.0", args.metrics_port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, agent.stop)
        try:
            await agent.run()
        finally:
            server.close()
            await redis.aclose()  # type: ignore[attr-defined]
    log.info("agent stopped")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # optional, as for the gateway; the agent works on the default loop
        runner = asyncio.run
    runner(serve(args))
    with contextlib.suppress(Exception):
        logging.shutdown()


if __name__ == "__main__":
    main()
