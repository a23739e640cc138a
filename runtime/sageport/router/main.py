"""``sageport-router --port 8080 --container HOST=PORT ...``: the router sidecar of a Direct
multi-container pod; with ``--stage HOST ... --stages-file PATH``, of a Serial pipeline's anchor
pod (its one container is the first stage); with ``--multi-model-prefix URL``, in front of a
multi-model container that is not sageport's server (it loads each TargetModel into it, see
sageport.router.loader). The operator writes these arguments."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from sageport.contract import CONTAINER_PORT, MULTI_MODEL_ROOT
from sageport.net.httpserver import HttpProtocol
from sageport.router.app import Router, RouterSettings
from sageport.router.loader import ModelLoader
from sageport.router.metrics import RouterMetrics
from sageport.router.routing import container_table, parse_container
from sageport.storage import fetch

log = logging.getLogger("sageport.router")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sageport-router", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=CONTAINER_PORT)
    parser.add_argument(
        "--container",
        action="append",
        type=parse_container,
        required=True,
        metavar="HOST=PORT",
        help="a model container: its containerHostname and SAGEMAKER_BIND_TO_PORT (repeat per container)",
    )
    parser.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="HOST",
        help="Serial pipeline: a further stage, in order (repeat); its address comes from --stages-file",
    )
    parser.add_argument(
        "--stages-file",
        default=None,
        metavar="PATH",
        help="Serial pipeline: a file of host=ip:port,... (the pod's stages annotation), read again as it changes",
    )
    parser.add_argument(
        "--multi-model-prefix",
        default=None,
        metavar="URL",
        help="multi-model: the Model's S3 prefix; the router loads each TargetModel into the one --container",
    )
    parser.add_argument(
        "--models-dir",
        default=MULTI_MODEL_ROOT,
        metavar="PATH",
        help="multi-model: where artifacts are unpacked (shared with the container)",
    )
    parser.add_argument("--endpoint", default="", help="the endpoint name, a label of the metrics")
    parser.add_argument("--variant", default="", help="the variant name, a label of the metrics")
    parser.add_argument("--model-timeout", type=float, default=60.0)
    parser.add_argument("--drain-timeout", type=float, default=25.0)
    parser.add_argument("--log-level", default="INFO")
    return parser


async def serve(args: argparse.Namespace) -> None:
    table = container_table(args.container)
    metrics = RouterMetrics(CollectorRegistry(), args.endpoint, args.variant)
    router = Router(
        table, metrics, RouterSettings(model_timeout=args.model_timeout), args.stage, args.stages_file
    )
    if args.multi_model_prefix:
        router.loader = ModelLoader(
            args.multi_model_prefix, Path(args.models_dir), fetch, router.load_model, None
        )
    await router.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    state = router.server_state()
    server = await loop.create_server(
        lambda: HttpProtocol(state), args.host, args.port, reuse_address=True, backlog=2048
    )
    log.info(
        "router listening on %s:%d for %s",
        args.host,
        args.port,
        ", ".join([f"{c.hostname}:{c.port}" for c in table.values()] + [f"{s} (stage)" for s in args.stage]),
    )
    await stop.wait()
    router.draining = True
    server.close()
    await state.drain(args.drain_timeout)
    await router.close()
    log.info("router stopped")


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        table = container_table(args.container)
        if args.stage and len(table) != 1:
            raise ValueError("--stage (a Serial pipeline) needs exactly one --container, the first stage")
        if args.multi_model_prefix and (len(table) != 1 or args.stage):
            raise ValueError("--multi-model-prefix needs exactly one --container and no --stage")
        if len({*table, *args.stage}) != len(table) + len(args.stage):
            raise ValueError("a stage hostname is given twice")
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # uvloop is optional
        runner = asyncio.run
    runner(serve(args))
    with contextlib.suppress(Exception):
        logging.shutdown()


if __name__ == "__main__":
    main()
