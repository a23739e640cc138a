"""``python -m sageport_dev cluster up | down | status | kubeconfig``: a bare cluster (state in
$SAGEPORT_CLUSTER_DIR), for tests and for running the operator by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sageport_dev.layout import Layout, state_dir_from_env

# The control-plane modules (cryptography, pydantic) load only in the commands that need them,
# so `kubeconfig` answers at once.


def _up(state_dir: Path, node_set: Path | None, timeout: float, with_real_node: bool) -> int:
    from sageport_dev.control_plane import ClusterError, start
    from sageport_dev.nodes import DEFAULT_NODE_SET

    try:
        state = start(
            state_dir, node_set=node_set or DEFAULT_NODE_SET, timeout=timeout, with_real_node=with_real_node
        )
    except ClusterError as error:
        print(f"cluster failed to start: {error}", file=sys.stderr)
        return 1
    timings = state.timings
    build_seconds = timings.get("build_seconds", 0.0)
    if build_seconds >= 1.0:
        print(f"binaries not all cached: built (or waited for another build) in {build_seconds:.1f} s")
    if "start_seconds" in timings:
        steps = ", ".join(
            f"{key.removesuffix('_ready_seconds').replace('_', ' ')} {value:.1f}"
            for key, value in timings.items()
            if key.endswith("_ready_seconds")
        )
        real = " and the real node" if state.real_node else ""
        print(
            f"warm start: ready in {timings['start_seconds']:.1f} s ({len(state.node_names)} kwok nodes{real})"
        )
        print(f"  seconds from start until each was ready: {steps}")
    print(f"apiserver: {state.apiserver_url}")
    print(f"export KUBECONFIG={Layout(state_dir).kubeconfig}")
    return 0


def _down(state_dir: Path) -> int:
    from sageport_dev.control_plane import ClusterError, stop_cluster

    try:
        removed = stop_cluster(state_dir)
    except ClusterError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"stopped and removed {state_dir}" if removed else f"no cluster in {state_dir}")
    return 0


def _status(state_dir: Path) -> int:
    from sageport_dev.control_plane import health, status_line

    components = health(state_dir)
    if not components:
        print(f"no cluster in {state_dir}")
        return 1
    for component in components:
        print(status_line(component))
    return 0 if all(component.healthy for component in components) else 1


def _kubeconfig(state_dir: Path) -> int:
    path = Layout(state_dir).kubeconfig
    if not path.is_file():
        print(f"no cluster in {state_dir}: run `make cluster-up` first", file=sys.stderr)
        return 1
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sageport_dev cluster", description=__doc__)
    parser.add_argument(
        "--dir",
        type=Path,
        default=state_dir_from_env(),
        help="state directory (default: $SAGEPORT_CLUSTER_DIR or /tmp/sageport-cluster)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build what is missing, start the cluster, wait until it is ready")
    up.add_argument("--nodes", type=Path, help="node set YAML (default: dev/sageport_dev/nodes.yaml)")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each readiness check")
    up.add_argument(
        "--real-node",
        action="store_true",
        help="also start a real node (kubelet, kube-proxy, containerd) where pods really run; needs root",
    )
    commands.add_parser("down", help="stop the processes `up` started and delete the state directory")
    commands.add_parser("status", help="health of each component; exit 1 unless all are healthy")
    commands.add_parser("kubeconfig", help="print the admin kubeconfig path, and nothing else")
    args = parser.parse_args(argv)

    state_dir: Path = args.dir.absolute()
    if args.command == "up":
        return _up(state_dir, args.nodes, args.timeout, args.real_node)
    if args.command == "down":
        return _down(state_dir)
    if args.command == "status":
        return _status(state_dir)
    return _kubeconfig(state_dir)
