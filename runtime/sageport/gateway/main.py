"""``sageport-gateway``: the SageMaker Runtime front door.

Standalone:  sageport-gateway --port 9000 --routes routes.yaml [--keys keys.yaml | --no-auth]
Kubernetes:  sageport-gateway --port 9000 --kubernetes [--kubeconfig FILE] [--namespace NS ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from sageport import contract
from sageport.asyncinf.queue import RedisQueue
from sageport.controlapi.http import ControlApiServer
from sageport.gateway import config, logs
from sageport.gateway.app import Gateway, Settings
from sageport.gateway.auth import (
    AccessKey,
    AnonymousPrincipal,
    Authenticator,
    KeyPrincipal,
    NoAuth,
    sigv4_authenticator,
)
from sageport.gateway.backlog import sample_forever
from sageport.gateway.capture import DataCapture
from sageport.gateway.metrics import GatewayMetrics
from sageport.gateway.routing import RouteTable
from sageport.net.auth import KeyStore
from sageport.net.httpserver import HttpProtocol

if TYPE_CHECKING:
    from sageport.controlapi.kube import KubeObjects

log = logging.getLogger("sageport.gateway")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sageport-gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=9000, help="port to listen on (default 9000)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--routes", type=Path, help="standalone mode: routes file (endpoints -> variants -> backends)"
    )
    source.add_argument(
        "--kubernetes", action="store_true", help="Kubernetes mode: watch Endpoints and EndpointSlices"
    )
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--keys", type=Path, help="standalone mode: access keys file for SigV4")
    auth.add_argument("--no-auth", action="store_true", help="accept every request without authentication")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="Kubernetes mode: kubeconfig (default: in-cluster, then ~/.kube/config)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="Kubernetes mode: watch only this namespace (repeatable; default all namespaces)",
    )
    parser.add_argument(
        "--system-namespace",
        default=os.environ.get("POD_NAMESPACE", "sageport-system"),
        help="Kubernetes mode: namespace whose access-key Secrets may grant other namespaces",
    )
    parser.add_argument(
        "--model-timeout", type=float, default=60.0, help="seconds a model may take (default 60)"
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=4096,
        help="requests in flight before ThrottlingException (default 4096)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=25.0,
        help="seconds to let in-flight requests finish on SIGTERM (default 25)",
    )
    parser.add_argument(
        "--shutdown-delay",
        type=float,
        default=0.0,
        help="seconds to keep serving after SIGTERM with /ping failing, so load balancers and "
        "EndpointSlices stop sending first (Kubernetes: about 5; default 0)",
    )
    parser.add_argument(
        "--scaler-port",
        type=int,
        help="serve KEDA's external-push scaler (gRPC) on this port, for serverless "
        f"variants (the chart's is {contract.SCALER_PORT}; default: none)",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="standalone mode: another gateway replica's --scaler-port, to share serverless demand "
        "with (repeatable)",
    )
    parser.add_argument(
        "--peers-service",
        metavar="NAME",
        help="Kubernetes mode: the gateway's own Service (in --system-namespace); its EndpointSlices "
        "name the replicas that share serverless demand (this pod's own POD_IP left out)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics on this port only (default: on --port with the API)",
    )
    parser.add_argument(
        "--capture-flush-seconds",
        type=float,
        default=5.0,
        help="data capture: write buffered calls to S3 this often (default 5)",
    )
    parser.add_argument(
        "--capture-buffer-mib",
        type=int,
        default=32,
        help="data capture: payload MiB held in memory before calls go uncaptured (default 32)",
    )
    parser.add_argument("--account", default="sageport", help="account name used in not-found messages")
    parser.add_argument(
        "--control-api",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Kubernetes mode: serve the SageMaker control-plane API (POST / with X-Amz-Target) on "
        "the same port (default on)",
    )
    parser.add_argument(
        "--account-id",
        default="000000000000",
        help="the 12-digit account id in the control-plane API's ARNs (default 000000000000)",
    )
    parser.add_argument("--access-log", action="store_true", help="log one line per successful invocation")
    parser.add_argument("--log-level", default="INFO")
    return parser


class FileWatcher:
    """Reload a file when its modification time changes (cheap polling; no extra dependency)."""

    def __init__(self, path: Path, apply: Callable[[Path], None], interval: float = 2.0) -> None:
        self.path = path
        self.apply = apply
        self.interval = interval
        self._mtime = self._stat()

    def _stat(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            mtime = self._stat()
            if mtime == self._mtime:
                continue
            self._mtime = mtime
            try:
                self.apply(self.path)
                log.info("reloaded %s", self.path)
            except config.ConfigError as error:
                log.error("keeping the previous configuration: %s", error)


async def serve(args: argparse.Namespace) -> None:
    table = RouteTable()
    source = None
    keys: KeyStore[AccessKey] = KeyStore()
    background: list[asyncio.Task[None]] = []
    authenticator: Authenticator
    closers: list[Callable[[], None]] = []

    if args.kubernetes:
        from sageport.gateway.kube import KubernetesSource

        source = KubernetesSource(
            table=table,
            keys=keys,
            namespaces=args.namespace,
            system_namespace=args.system_namespace,
            kubeconfig=args.kubeconfig,
        )
        closers.append(source.stop)
        authenticator = NoAuth() if args.no_auth else sigv4_authenticator(keys, source.check_bearer)
    else:
        table.replace(config.load_routes(args.routes))
        background.append(
            asyncio.create_task(
                FileWatcher(args.routes, lambda path: table.replace(config.load_routes(path))).run()
            )
        )
        if args.no_auth:
            authenticator = NoAuth()
        elif args.keys is not None:
            keys.replace(config.load_keys(args.keys))
            background.append(
                asyncio.create_task(
                    FileWatcher(args.keys, lambda path: keys.replace(config.load_keys(path))).run()
                )
            )
            authenticator = sigv4_authenticator(keys)
        else:
            raise config.ConfigError("standalone mode needs --keys FILE or --no-auth")

    settings = Settings(
        model_timeout=args.model_timeout,
        max_in_flight=args.max_in_flight,
        account=args.account,
        access_log=args.access_log,
        metrics_on_main_port=args.metrics_port is None,
    )
    metrics = GatewayMetrics(CollectorRegistry())
    capture = DataCapture(
        metrics, max_bytes=args.capture_buffer_mib << 20, flush_seconds=args.capture_flush_seconds
    )
    gateway = Gateway(table, authenticator, metrics, settings, capture=capture)
    gateway.queue = queue = RedisQueue.from_env()  # InvokeEndpointAsync's queue, if configured
    if queue is not None:
        background.append(asyncio.create_task(sample_forever(table, queue, metrics)))
    # Kubernetes mode listens at once but is not ready (503 on /ping and on invocations, both
    # retried by clients) until the first list of Endpoints, EndpointSlices and keys is in.
    gateway.ready = source is None
    if source is not None:
        gateway.refresh_endpoint = source.refresh_endpoint
    control = None
    if args.kubernetes and args.control_api:
        control = await _control_api(args, authenticator)
        closers.append(control.stop)
        gateway.control_api = control.server
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await gateway.start()
    capture.start()
    state = gateway.server_state()
    server = await loop.create_server(
        lambda: HttpProtocol(state), args.host, args.port, reuse_address=True, backlog=2048
    )
    metrics_state = gateway.metrics_server_state()
    metrics_server = None
    if args.metrics_port is not None:
        metrics_server = await loop.create_server(
            lambda: HttpProtocol(metrics_state), args.host, args.metrics_port, reuse_address=True
        )
    scaler = None
    if args.scaler_port is not None:
        from sageport.gateway.activator import start_scaler
        from sageport.gateway.sharing import Sharer, peer_handler

        scaler = await start_scaler(
            gateway.activator, args.host, args.scaler_port, [peer_handler(gateway.activator)]
        )
        log.info("KEDA external-push scaler listening on %s:%d", args.host, args.scaler_port)
        addresses: Callable[[], list[str]] = lambda: list(args.peer)  # noqa: E731
        if source is not None and args.peers_service:
            addresses = source.watch_peers(args.peers_service, os.environ.get("POD_IP"))
        if args.peer or (source is not None and args.peers_service):
            sharer = Sharer(gateway.activator, gateway.activator.peers.me, addresses)
            background.append(asyncio.create_task(sharer.run()))
            log.info(
                "sharing serverless demand with the other gateway replicas as %s", gateway.activator.peers.me
            )
    log.info(
        "gateway listening on %s:%d (%s mode, auth %s, %d endpoints)",
        args.host,
        args.port,
        "kubernetes" if args.kubernetes else "standalone",
        "off" if args.no_auth else "on",
        len(table.names()),
    )

    if control is not None:
        await control.start()
    if source is not None:
        await source.start()
        gateway.ready = True
        log.info("routes synced from Kubernetes: %d endpoints", len(table.names()))
    await stop.wait()

    # Drain: fail /ping, keep serving for --shutdown-delay while traffic moves elsewhere, then
    # refuse new connections, let the requests in flight finish (bounded), and close.
    gateway.draining = True
    if args.shutdown_delay > 0:
        log.info("shutting down in %.1f s", args.shutdown_delay)
        await asyncio.sleep(args.shutdown_delay)
    log.info("draining %d request(s) in flight", gateway.in_flight)
    for task in background:
        task.cancel()
    server.close()
    if metrics_server is not None:
        metrics_server.close()
        await metrics_state.drain(1.0)
    await state.drain(args.drain_timeout)
    if scaler is not None:
        await scaler.stop(1.0)
    await capture.close(last_flush_seconds=5.0)
    await gateway.close()
    if queue is not None:
        await queue.close()
    for close in closers:
        close()
    log.info("gateway stopped")


class _ControlApi:
    """The control-plane API's parts: its cache and writer (one Kubernetes shell) and its server."""

    def __init__(self, objects: KubeObjects, server: ControlApiServer) -> None:
        self.objects = objects
        self.server = server

    async def start(self) -> None:
        await self.objects.start()

    def stop(self) -> None:
        self.objects.stop()


async def _control_api(args: argparse.Namespace, authenticator: Authenticator) -> _ControlApi:
    from sageport.controlapi import shapes
    from sageport.controlapi.http import Scope, refused
    from sageport.controlapi.kube import KubeObjects
    from sageport.controlapi.service import ControlApi, Store

    store = Store()
    objects = KubeObjects(store, args.namespace, args.kubeconfig)
    table = await asyncio.to_thread(shapes.load)
    fallback = args.namespace[0] if args.namespace else "default"

    def scope_of(principal: object) -> Scope:
        """A key acts in its home namespace as the ServiceAccount its Secret names; a key limited
        to named endpoints is for invoking only. Without authentication (--no-auth) calls act in
        the first --namespace as the gateway itself."""
        if isinstance(principal, KeyPrincipal):
            key = principal.key
            if key.endpoints is not None:
                raise refused("its access key is limited to named endpoints (invoking only)")
            user = key.kubernetes_user
            if key.home_namespace is None or user is None:
                raise refused(
                    "its access key names no Kubernetes identity (the key's Secret has no "
                    "serviceAccount), so it may invoke endpoints only"
                )
            return Scope(key.home_namespace, user)
        if isinstance(principal, AnonymousPrincipal):
            return Scope(fallback, None)
        raise refused("only access keys (SigV4) act on the control plane; bearer tokens invoke only")

    api = ControlApi(table, store, objects, authorizer=objects)
    server = ControlApiServer(api, authenticator, scope_of, args.account_id)
    return _ControlApi(objects, server)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level)
    if not args.kubernetes and args.keys is None and not args.no_auth:
        build_parser().error("standalone mode needs --keys FILE or --no-auth")
    if args.kubernetes and args.keys is not None:
        build_parser().error("--keys is for standalone mode; in Kubernetes mode keys come from Secrets")
    if not args.kubernetes and (args.namespace or args.kubeconfig is not None):
        build_parser().error("--namespace and --kubeconfig need --kubernetes")
    if args.kubernetes and args.peer:
        build_parser().error("--peer is for standalone mode; in Kubernetes mode use --peers-service")
    if (args.peer or args.peers_service) and args.scaler_port is None:
        build_parser().error("--peer and --peers-service share demand over the scaler: give --scaler-port")
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # uvloop is optional; the gateway works on the default loop
        runner = asyncio.run
    try:
        runner(serve(args))
    except config.ConfigError as error:
        log.error("%s", error)
        sys.exit(2)
    with contextlib.suppress(Exception):
        logging.shutdown()


if __name__ == "__main__":
    main()
