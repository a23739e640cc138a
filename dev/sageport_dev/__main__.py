"""``python -m sageport_dev up | down | status | alarm-rules | images | demo | cluster ...``: the local stack.

- ``up``: the whole stack (cluster with a real node, images, S3, the chart, a ready namespace),
  left running; prints ``export`` lines for ``eval "$(python -m sageport_dev up)"``;
  ``up --prometheus`` adds Prometheus, the alarm source of Endpoint updates;
- ``alarm-rules FILE...``: load alerting rule files into that Prometheus (``--remove NAME`` too);
- ``down``: stop all of it; ``status``: a line per part, exit 1 unless all are up;
- ``images``: build the images (cached by content), print their refs;
- ``demo``: ``up``, the example, one boto3 invocation, ``down``;
- ``cluster up | down | status | kubeconfig``: a bare cluster, without the chart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sageport_dev import cluster_cli, demo, images, local_stack, stack
from sageport_dev.control_plane import ClusterError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cluster"]:
        return cluster_cli.main(argv[1:])
    if argv[:1] == ["demo"]:
        return demo.main(argv[1:])
    if argv[:1] == ["images"]:
        return images.main(argv[1:] or ["build"])
    parser = argparse.ArgumentParser(prog="python -m sageport_dev", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser(
        "up", help="start the stack (or check it) and print export lines for a shell"
    )
    up_parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also run Prometheus scraping the gateway: the alarm source of updates (make up PROMETHEUS=1)",
    )
    rules_parser = commands.add_parser(
        "alarm-rules", help="load alerting rule files into the stack's Prometheus (checked, then reloaded)"
    )
    rules_parser.add_argument(
        "files", nargs="*", type=Path, help="rule files (.yaml/.yml); one of the same name is replaced"
    )
    rules_parser.add_argument(
        "--remove", action="append", default=[], metavar="NAME", help="remove an installed file"
    )
    commands.add_parser("down", help="stop everything `up` started; no process or mount is left")
    commands.add_parser("status", help="a line per part; exit 1 unless all are up")
    commands.add_parser("images", help="build the runtime and operator images")
    commands.add_parser("demo", help="up, the realtime-sklearn example, one boto3 invocation, down")
    commands.add_parser("cluster", help="a bare cluster: cluster up | down | status | kubeconfig")
    args = parser.parse_args(argv)
    if args.command == "up":
        try:
            env = local_stack.up(with_prometheus=args.prometheus)
        except (ClusterError, stack.StackError) as error:
            print(f"up failed: {error}", file=sys.stderr)
            return 1
        sys.stdout.write(env.exports())  # last, and alone on stdout: `eval "$(make -s up)"`
        return 0
    if args.command == "alarm-rules":
        try:
            installed = local_stack.install_alarm_rules(args.files, args.remove)
        except stack.StackError as error:
            print(f"alarm-rules failed: {error}", file=sys.stderr)
            return 1
        print(f"rule files loaded: {', '.join(installed) or 'none'}")
        return 0
    if args.command == "down":
        return 1 if local_stack.down() else 0
    healthy, lines = local_stack.status()
    print("\n".join(lines))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
