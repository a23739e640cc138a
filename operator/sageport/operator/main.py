"""``sageport-operator``: run the kopf operator.

With no arguments it watches all namespaces, using the in-cluster config inside a pod and
``$KUBECONFIG`` (or ~/.kube/config) elsewhere. With ``--leader-election`` several replicas may
run: one holds a Lease and reconciles, the others stand by (sageport.operator.election).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import kopf

from sageport.contract import MANAGED_BY

log = logging.getLogger("sageport.operator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=MANAGED_BY, description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch only these (repeatable)"
    )
    parser.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness endpoint URL")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--leader-election",
        action="store_true",
        help="reconcile only while holding the Lease, so several replicas may run",
    )
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else default)",
    )
    parser.add_argument("--lease-name", default=MANAGED_BY, help=f"name of the Lease (default {MANAGED_BY})")
    parser.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        help="this replica's name in the Lease (default: $POD_NAME, else host-pid)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    if not args.verbose:  # one "handler succeeded" line per watch event is noise at scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    import sageport.operator.handlers  # noqa: F401 - registers the handlers with kopf
    from sageport.operator import kopf_gate

    kopf_gate.install()

    asyncio.run(_run(args) if args.leader_election else _operate(args))


async def _operate(args: argparse.Namespace) -> None:
    await kopf.operator(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
    )


async def _run(args: argparse.Namespace) -> None:
    from sageport.kubeclient import load_api_client
    from sageport.operator.election import LeaderElector
    from sageport.operator.kube import KubernetesApi

    api = KubernetesApi(load_api_client(pool_size=2), MANAGED_BY)
    elector = LeaderElector(api, args.lease_namespace, args.lease_name, args.identity)
    async with _alive_while_standing_by(args.liveness):
        await elector.acquire()

    def lost(reason: str) -> None:
        # Another replica may hold the Lease any moment now: stop reconciling at once, as
        # client-go's leaders do; the pod restarts and stands by.
        log.error("lost leadership: %s; exiting", reason)
        logging.shutdown()
        os._exit(1)

    keeper = asyncio.create_task(elector.keep(lost))
    try:
        await _operate(args)
    finally:
        keeper.cancel()
        await elector.release()
        api.close()


@contextlib.asynccontextmanager
async def _alive_while_standing_by(liveness: str | None) -> AsyncIterator[None]:
    """Answer the liveness probe while waiting for the Lease (kopf's own endpoint starts with
    kopf), so a standby replica is not restarted for waiting."""
    if not liveness:
        yield
        return
    url = urlsplit(liveness)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n")
            writer.write(b'Connection: close\r\n\r\n{"standingBy": true}\n')
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, url.hostname or "0.0.0.0", url.port or 80, reuse_address=True)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


if __name__ == "__main__":
    main()
